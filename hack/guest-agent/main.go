// Command guest-agent runs inside the simulator's QEMU guest, started by
// the guest's init (hack/guest-image.sh builds it into the image). It
// serves the guestwire streams the host opens on the virtio-serial port
// named guestwire.PortName: CSI connections, each passed to the node
// plugin's unix socket, and commands (the host's only way into the guest:
// it has no network).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu/guestwire"
)

func main() {
	sock := flag.String("csi-socket", guestwire.CSISocket, "the node plugin's CSI socket")
	sysDir := flag.String("sys-dir", "/sys", "sysfs, where the port is found by name")
	flag.Parse()
	log.SetPrefix("guest-agent: ")
	port := waitPort(*sysDir)
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		log.Fatal(err)
	}
	a := &agent{sock: *sock}
	m := guestwire.NewMux(f, a.accept, 0)
	log.Printf("serving %s on %s", guestwire.PortName, port)
	err = m.Serve(&hangupReader{f: f, onHangup: m.ResetStreams})
	log.Fatalf("port %s: %v", port, err) // init starts a new agent
}

// waitPort finds the port's device by its name; virtio_console may come up
// after the agent starts.
func waitPort(sysDir string) string {
	for i := 0; ; i++ {
		names, _ := filepath.Glob(filepath.Join(sysDir, "class/virtio-ports/*/name"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == guestwire.PortName {
				return "/dev/" + filepath.Base(filepath.Dir(n))
			}
		}
		if i == 50 {
			log.Printf("still no virtio port named %s", guestwire.PortName)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangupReader reads the port. A virtio port reads 0 bytes while no host is
// connected: that ends the session (every stream), and reading resumes
// when the host is back.
type hangupReader struct {
	f        *os.File
	onHangup func()
	down     bool
}

func (r *hangupReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 {
			r.down = false
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if !r.down {
			r.down = true
			r.onHangup()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type agent struct{ sock string }

func (a *agent) accept(kind string, s *guestwire.Stream) {
	defer s.Close()
	switch kind {
	case guestwire.KindCSI:
		a.csi(s)
	case guestwire.KindExec:
		a.exec(s)
	default:
		log.Printf("unknown stream kind %q", kind)
	}
}

// csi joins the stream to a fresh connection to the node plugin; either
// side ending ends both.
func (a *agent) csi(s *guestwire.Stream) {
	conn, err := net.Dial("unix", a.sock)
	if err != nil {
		return // the host sees the stream end: not serving yet
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, s); done <- struct{}{} }()
	go func() { _, _ = io.Copy(s, conn); done <- struct{}{} }()
	<-done
}

func (a *agent) exec(s *guestwire.Stream) {
	var req guestwire.Request
	if err := guestwire.ReadMessage(s, &req); err != nil {
		_ = guestwire.WriteMessage(s, guestwire.Reply{Code: -1, Error: "reading request: " + err.Error()})
		return
	}
	_ = guestwire.WriteMessage(s, run(req))
}

func run(req guestwire.Request) guestwire.Reply {
	if len(req.Argv) == 0 {
		return guestwire.Reply{Code: -1, Error: "empty argv"}
	}
	timeout := time.Minute
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	var stdout, stderr limited
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	rep := guestwire.Reply{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		rep.Code, rep.Error = -1, fmt.Sprintf("timed out after %s", timeout)
	case err != nil && !errors.As(err, &exitErr):
		rep.Code, rep.Error = -1, err.Error()
	}
	return rep
}

// limited keeps the first guestwire.MaxOutput bytes written to it.
type limited struct{ bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := guestwire.MaxOutput - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
