// Command demo runs the driver's whole life cycle on one machine: it starts
// the CloudSigma simulator (drives attached to the local server appear as
// loop devices) and the driver binary, then speaks CSI gRPC to it the way
// the Kubernetes sidecars and kubelet do, printing each step with its time.
// It ends by checking that nothing leaked.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

const (
	gib      = int64(1) << 30
	user     = "demo@example.com"
	password = "demo-password"
	server   = "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"
)

func main() {
	simBin := flag.String("sim", "bin/cloudsigma-sim", "path of the cloudsigma-sim binary")
	drvBin := flag.String("driver", "bin/cloudsigma-csi-driver", "path of the cloudsigma-csi-driver binary")
	fsType := flag.String("fs", "ext4", "filesystem: ext4 or xfs")
	keep := flag.Bool("keep", false, "keep the work directory (logs) afterwards")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "The demo needs root: the simulator attaches drives as loop devices and the node plugin runs mkfs and mount,\n"+
			"as a real node plugin does in its privileged container. Run it as root (sudo make demo).")
		os.Exit(2)
	}
	d, err := start(*simBin, *drvBin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	err = d.lifeCycle(*fsType)
	d.stop()
	if leakErr := d.checkLeaks(); err == nil {
		err = leakErr
	} else if leakErr != nil {
		fmt.Fprintln(os.Stderr, leakErr)
	}
	if !*keep && err == nil {
		os.RemoveAll(d.work)
	} else {
		fmt.Println("work directory and logs kept in", d.work)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("nothing leaked")
}

type demo struct {
	work, devDir, dataDir string
	procs                 []*exec.Cmd
	api                   *cloudsigma.Client
	ctrl                  csi.ControllerClient
	node                  csi.NodeClient
	step                  int
	began                 time.Time
}

func start(simBin, drvBin string) (*demo, error) {
	work, err := os.MkdirTemp("", "cloudsigma-demo-")
	if err != nil {
		return nil, err
	}
	d := &demo{work: work, devDir: filepath.Join(work, "by-id"), dataDir: filepath.Join(work, "drives"), began: time.Now()}
	for _, dir := range []string{d.devDir, d.dataDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/api/2.0/", port)
	sock := filepath.Join(work, "csi.sock")
	if err := d.spawn("sim", simBin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--username", user, "--password", password,
		"--local-server", server, "--guest-devices", d.devDir, "--data-dir", d.dataDir); err != nil {
		return nil, err
	}
	if d.api, err = cloudsigma.New(cloudsigma.Config{APIURL: apiURL, Username: user, Password: password, AllowInsecureHTTP: true}); err != nil {
		return nil, err
	}
	if err := waitFor(10*time.Second, func() error { _, err := d.api.GetCapabilities(context.Background()); return err }); err != nil {
		d.stop()
		return nil, fmt.Errorf("simulator did not come up: %w", err)
	}
	if err := d.spawn("driver", drvBin, "--endpoint", "unix://"+sock, "--mode", "all", "--api-url", apiURL,
		"--allow-insecure-http", "--node-id", server, "--by-id-dir", d.devDir, "--cluster-id", "demo", "-v", "2"); err != nil {
		d.stop()
		return nil, err
	}
	if err := waitFor(10*time.Second, func() error { _, err := os.Stat(sock); return err }); err != nil {
		d.stop()
		return nil, fmt.Errorf("driver socket did not appear (see %s/driver.log): %w", work, err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.stop()
		return nil, err
	}
	d.ctrl, d.node = csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	fmt.Printf("simulator at %s, driver at %s, logs in %s\n", apiURL, sock, work)
	return d, nil
}

func (d *demo) spawn(name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(d.work, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "CLOUDSIGMA_USERNAME="+user, "CLOUDSIGMA_PASSWORD="+password)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (%s): %w; build it first (make build)", name, bin, err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

// stop ends the driver, then the simulator (which detaches its loop devices).
func (d *demo) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	d.procs = nil
}

// do runs one step and prints it with its duration.
func (d *demo) do(what string, f func(ctx context.Context) (string, error)) error {
	d.step++
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	detail, err := f(ctx)
	status := "ok"
	if err != nil {
		status = "FAILED: " + err.Error()
	}
	fmt.Printf("%2d. %-52s %8s  %s %s\n", d.step, what, time.Since(start).Round(time.Millisecond), status, detail)
	return err
}

func waitFor(limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return fmt.Sprintf("%x", s[:8]) }
