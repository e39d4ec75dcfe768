//go:build e2e

// Package e2e runs the driver under a real Kubernetes control plane on one
// machine: etcd, kube-apiserver, kube-controller-manager, the CSI sidecars
// and snapshot-controller (hack/e2e-binaries.sh builds them), the CloudSigma
// simulator with loop devices as the guest's drives, and the driver. The
// sidecars use our deploy/kubernetes RBAC, so a missing rule fails here.
// There is no scheduler and no kubelet: the test plays their parts (the
// selected-node annotation, Node/CSINode registration, VolumeAttachments,
// NodeStage/NodePublish with what the API objects carry). Run: make e2e.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

var (
	binDir    = flag.String("bin-dir", "../../bin/e2e", "directory hack/e2e-binaries.sh filled")
	driverBin = flag.String("driver", "../../bin/cloudsigma-csi-driver", "the driver binary (make build)")
	simBin    = flag.String("sim", "../../bin/cloudsigma-sim", "the simulator binary (make build)")
	keepWork  = flag.Bool("keep", false, "keep the work directory (logs, kubeconfigs) even when the test passes")
)

const (
	simUser     = "e2e@example.com"
	simPassword = "e2e-password"
	serverUUID  = "6c1d3f0e-2a4b-4c8d-9e0f-1a2b3c4d5e6f" // the simulated CloudSigma server this machine is
	nodeName    = "e2e-node"
	// The second node, for failover: another server on this machine.
	otherServer = "9f2e4d1c-3b5a-4e7f-8a9b-0c1d2e3f4a5b"
	otherNode   = "e2e-node-b"
	ns          = "default"
	sysNS       = "kube-system"
)

type env struct {
	t          *testing.T
	repo, work string
	dataDir    string
	procs      *procs
	cluster    *cluster
	kube       kubernetes.Interface
	dyn        dynamic.Interface
	apply      *applier
	cloud      *cloudsigma.Client
	// home is the node every volume uses but the failover's; other is the
	// node that volume starts on, whose server is then stopped.
	home, other *kubeNode
	ctrlSock    string
	apiURL      string // the simulator's
	step        int
	began       time.Time
}

func (e *env) bin(name string) string {
	if name == "etcd" {
		if p, err := exec.LookPath("etcd"); err == nil {
			return p
		}
		return "/usr/bin/etcd"
	}
	return filepath.Join(*binDir, name)
}

// run does one step with a time limit, printing its duration; a failed step
// ends the test (cleanup still runs).
func (e *env) run(what string, limit time.Duration, f func(ctx context.Context) (string, error)) {
	e.t.Helper()
	e.step++
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	detail, err := f(ctx)
	status := "ok"
	if err != nil {
		status = "FAILED"
	}
	fmt.Printf("%2d. %-58s %8s  %s %s\n", e.step, what, time.Since(start).Round(time.Millisecond), status, detail)
	if err != nil {
		e.t.Fatalf("step %d, %s: %v", e.step, what, err)
	}
}

func TestE2E(t *testing.T) {
	testenv.RequireRoot(t, "the simulator attaches loop devices and the node plugin runs mkfs and mount")
	e := newEnv(t)
	e.run("start etcd, kube-apiserver, kube-controller-manager", 2*time.Minute, e.startControlPlane)
	e.run("apply snapshot CRDs and snapshot-controller RBAC", time.Minute, e.applyCRDs)
	e.run("helm template | server-side dry-run apply", 2*time.Minute, e.helmDryRun)
	e.run("kubectl apply -k deploy/kubernetes --dry-run=client/server", 2*time.Minute, e.kustomizeDryRun)
	e.run("apply deploy/kubernetes, the chart's out-of-service RBAC", time.Minute, e.applyDeploy)
	e.run("start simulator, driver (controller, node)", time.Minute, e.startDriver)
	e.run("start sidecars with their service accounts' tokens", time.Minute, e.startSidecars)
	e.run("register the node (Node, CSINode) as kubelet would", time.Minute, func(ctx context.Context) (string, error) {
		return e.register(ctx, e.home, false)
	})
	e.lifeCycle()
	e.failover()
	e.run("sidecar logs: no request denied by RBAC", time.Minute, e.checkDenials)
	fmt.Printf("e2e: %d steps in %s\n", e.step, time.Since(e.began).Round(time.Second))
}

func newEnv(t *testing.T) *env {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("", "cloudsigma-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, repo: repo, work: work, dataDir: filepath.Join(work, "drives"),
		procs: &procs{work: work}, began: time.Now()}
	if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if e.home, err = e.newNode(nodeName, serverUUID); err != nil {
		t.Fatal(err)
	}
	if e.other, err = e.newNode(otherNode, otherServer); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*string{binDir, driverBin, simBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("work directory (logs):", work)
	t.Cleanup(e.cleanUp)
	return e
}

func (e *env) startControlPlane(ctx context.Context) (string, error) {
	c, err := startCluster(ctx, e)
	if err != nil {
		return "", err
	}
	e.cluster = c
	if e.kube, err = kubernetes.NewForConfig(c.admin); err != nil {
		return "", err
	}
	if e.dyn, err = dynamic.NewForConfig(c.admin); err != nil {
		return "", err
	}
	// The controller-manager is up once its service account controller has
	// made the default namespace's account.
	err = e.eventually(ctx, "kube-controller-manager", func(ctx context.Context) error {
		_, err := e.kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", getOpts)
		return err
	})
	if err != nil {
		return "", err
	}
	v, err := e.kube.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return "Kubernetes " + v.GitVersion + " at " + c.server, e.newApplier()
}

func (e *env) startDriver(ctx context.Context) (string, error) {
	port := freePort(e.t)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d/api/2.0/", port)
	e.apiURL = apiURL
	creds := []string{"CLOUDSIGMA_USERNAME=" + simUser, "CLOUDSIGMA_PASSWORD=" + simPassword}
	if _, err := e.procs.start("cloudsigma-sim", *simBin, creds, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--local-server", e.home.server, "--guest-devices", e.home.devDir,
		"--guest-server", e.other.server+"="+e.other.devDir, "--data-dir", e.dataDir); err != nil {
		return "", err
	}
	var err error
	if e.cloud, err = cloudsigma.New(cloudsigma.Config{APIURL: apiURL, Username: simUser, Password: simPassword,
		AllowInsecureHTTP: true}); err != nil {
		return "", err
	}
	if err := e.eventually(ctx, "simulator", func(ctx context.Context) error {
		_, err := e.cloud.GetCapabilities(ctx)
		return err
	}); err != nil {
		return "", err
	}
	e.ctrlSock = filepath.Join(e.work, "controller.sock")
	kc, err := e.saKubeconfig(ctx, sysNS, "cloudsigma-csi-controller")
	if err != nil {
		return "", err
	}
	// The out-of-service reconciler is on, with the chart's RBAC for it
	// (applyOutOfServiceRBAC), and short times so that failover runs in
	// seconds.
	if _, err := e.procs.start("driver-controller", *driverBin, creds,
		"--endpoint", "unix://"+e.ctrlSock, "--mode", "controller", "--api-url", apiURL, "--allow-insecure-http",
		"--cluster-id", "e2e", "-v", "4", "--out-of-service-taint", "--out-of-service-after=3s",
		"--out-of-service-interval=1s", "--kubeconfig", kc); err != nil {
		return "", err
	}
	if err := e.eventually(ctx, "driver socket "+e.ctrlSock, func(context.Context) error { _, err := os.Stat(e.ctrlSock); return err }); err != nil {
		return "", err
	}
	for _, n := range []*kubeNode{e.home, e.other} {
		if err := e.startPlugin(ctx, n, apiURL, creds); err != nil {
			return "", err
		}
	}
	return "simulator " + apiURL, nil
}

// startSidecars runs each sidecar as the controller pod would, but with a
// kubeconfig for the service account our RBAC binds, and the
// snapshot-controller with its upstream RBAC.
func (e *env) startSidecars(ctx context.Context) (string, error) {
	ctrlKC, err := e.saKubeconfig(ctx, sysNS, "cloudsigma-csi-controller")
	if err != nil {
		return "", err
	}
	snapKC, err := e.saKubeconfig(ctx, sysNS, "snapshot-controller")
	if err != nil {
		return "", err
	}
	csiAddr := "--csi-address=" + e.ctrlSock
	le := []string{"--leader-election", "--leader-election-namespace=" + sysNS, "--v=4"}
	cmds := []struct {
		name string
		args []string
	}{
		// The same arguments as deploy/kubernetes/controller.yaml.
		{"csi-provisioner", []string{csiAddr, "--kubeconfig=" + ctrlKC, "--feature-gates=Topology=true",
			"--extra-create-metadata", "--default-fstype=ext4", "--timeout=120s"}},
		{"csi-attacher", []string{csiAddr, "--kubeconfig=" + ctrlKC, "--timeout=120s"}},
		{"csi-resizer", []string{csiAddr, "--kubeconfig=" + ctrlKC, "--timeout=180s"}},
		{"csi-snapshotter", []string{csiAddr, "--kubeconfig=" + ctrlKC, "--timeout=300s"}},
		{"snapshot-controller", []string{"--kubeconfig=" + snapKC}},
	}
	for _, s := range cmds {
		if _, err := e.procs.start(s.name, e.bin(s.name), nil, append(s.args, le...)...); err != nil {
			return "", err
		}
	}
	// Each holds its leader-election Lease once it has started working.
	leases := []string{"external-attacher-leader-csi-cloudsigma-com", "external-resizer-csi-cloudsigma-com",
		"external-snapshotter-leader-csi-cloudsigma-com", "csi-cloudsigma-com", "snapshot-controller-leader"}
	for _, l := range leases {
		if err := e.eventually(ctx, "lease "+l, func(ctx context.Context) error {
			_, err := e.kube.CoordinationV1().Leases(sysNS).Get(ctx, l, getOpts)
			return err
		}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d sidecars hold their leases", len(cmds)), nil
}

// sidecars are the processes that talk to the API server as our
// service account (and snapshot-controller as its own), with the driver's
// controller and its out-of-service reconciler.
var sidecars = []string{"csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter", "snapshot-controller", "driver-controller"}

// denials reads the sidecars' logs for requests the API server refused: a
// rule missing from our RBAC, whether the sidecar gives up on it or only
// logs it (events, optional watches).
func (e *env) denials() []string {
	var found []string
	for _, name := range sidecars {
		data, err := os.ReadFile(filepath.Join(e.work, name+".log"))
		if err != nil {
			continue // not started yet
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
				found = append(found, name+": "+line)
			}
		}
	}
	return found
}

func (e *env) checkDenials(context.Context) (string, error) {
	if d := e.denials(); len(d) > 0 {
		return "", fmt.Errorf("%d denied requests:\n%s", len(d), strings.Join(d, "\n"))
	}
	return "none", nil
}

func (e *env) cleanUp() {
	fmt.Println("cleaning up")
	e.forceTeardown()
	e.procs.stopAll()
	leaks := e.leaks()
	for _, l := range leaks {
		e.t.Errorf("leaked: %s", l)
	}
	if *keepWork || e.t.Failed() {
		fmt.Println("work directory and logs kept in", e.work)
		return
	}
	os.RemoveAll(e.work)
}
