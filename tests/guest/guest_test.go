//go:build guest

// Package guest runs the node plugin on a real Linux kernel: the
// simulator's local server is a QEMU guest (pkg/cloudsim/qemu) booted from
// the image of hack/guest-image.sh, drives are hot-plugged into it as
// virtio-blk disks, the node plugin in it reads its node ID from the server
// context on its serial port and serves CSI to the host through the
// guest's virtio-serial port. The controller runs on the host.
//
// `make e2e-guest` builds the image and runs it (as root); the build tag
// keeps it out of `go test ./...`. Where QEMU cannot start, the tests fail
// with the reason: they never skip.
package guest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

var (
	imageDir = flag.String("image", "", "guest image directory (hack/guest-image.sh OUT_DIR)")
	accel    = flag.String("accel", "auto", "QEMU accelerator: auto, kvm or tcg")
	keepLogs = flag.String("logs", "", "copy the guest's console log here")
)

// bootTimeout is generous: software emulation on a busy 2-core machine.
const bootTimeout = 4 * time.Minute

// ext4Writer is the capability the guest tests stage most volumes with.
var ext4Writer = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// figures are printed after the tests, in the order they were taken.
var figures struct {
	sync.Mutex
	lines []string
}

func figure(t *testing.T, name string, d time.Duration, note string) {
	figures.Lock()
	defer figures.Unlock()
	figures.lines = append(figures.lines, fmt.Sprintf("  %-11s %-52s %9s  %s", t.Name(), name, d.Round(time.Millisecond), note))
}

func TestMain(m *testing.M) {
	flag.Parse()
	begin := time.Now()
	code := m.Run()
	if len(figures.lines) > 0 {
		figures.lines = append(figures.lines, fmt.Sprintf("  %-11s %-52s %9s  %s", "all", "the whole suite (every test above)", time.Since(begin).Round(time.Second), ""))
		fmt.Println("=== guest figures ===")
		fmt.Println(strings.Join(figures.lines, "\n"))
	}
	os.Exit(code)
}

// env is the simulator with the QEMU guest as its local server (and more
// QEMU guests when asked), the controller on the host, and a connection to
// the node plugin in each guest.
type env struct {
	*harness.Env
	node  *grpc.ClientConn            // the local server's node plugin
	nodes map[string]*grpc.ClientConn // server UUID -> its node plugin
	cc    csi.ControllerClient        // the controller on the host
}

// nodeArgs are the guest node plugin's flags, as the chart's DaemonSet
// passes them (charts/cloudsigma-csi/templates/node.yaml): the topology
// value comes from --location there too, since CloudSigma's server context
// holds no location (its uuid, meta and drives; see README). -v=4 logs every
// device lookup.
var nodeArgs = []string{"--location=" + harness.Location, "-v=4"}

// start brings everything up and waits for the guests' node plugins: the
// local server's, and one more guest per UUID in more, booted together.
func start(t *testing.T, more ...string) *env {
	t.Helper()
	if *imageDir == "" {
		t.Fatal("-image is required: hack/guest-image.sh OUT_DIR builds it (make e2e-guest does)")
	}
	begin := time.Now()
	guest := cloudsim.QEMUGuest{ImageDir: *imageDir, Accel: *accel, NodeArgs: nodeArgs}
	opts := harness.Options{QEMU: &guest}
	if len(more) > 0 {
		opts.QEMUServers = map[string]cloudsim.QEMUGuest{}
		for _, id := range more {
			opts.QEMUServers[id] = guest
		}
	}
	h := harness.Start(t, opts)
	e := &env{Env: h, nodes: map[string]*grpc.ClientConn{}}
	for _, id := range append([]string{h.Server}, more...) {
		info, _ := h.Sim.GuestInfoOf(id)
		t.Cleanup(func() { saveConsole(t, id, info.ConsoleLog) })
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		err := h.Sim.GuestReadyOf(ctx, id)
		cancel()
		if err != nil {
			t.Fatalf("guest of server %s (%s: %s): %v", id, info.Accel, info.AccelReason, err)
		}
		note := info.Accel + ": " + info.AccelReason
		if len(more) > 0 {
			note = fmt.Sprintf("server %s, %d guests booting at once, %s", id[:8], len(more)+1, info.Accel)
		}
		figure(t, "guest boot (QEMU start to node plugin serving)", time.Since(info.Started), note)
		conn, err := grpc.NewClient(h.Sim.GuestCSIEndpointOf(id), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		e.nodes[id] = conn
	}
	e.node = e.nodes[h.Server]
	e.cc = csi.NewControllerClient(h.Conn())
	figure(t, "environment up (simulator, controller, guests)", time.Since(begin), "")
	return e
}

func saveConsole(t *testing.T, server, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if *keepLogs != "" {
		if err := os.MkdirAll(*keepLogs, 0o755); err != nil {
			t.Logf("guest console not kept: %v", err)
		}
		name := fmt.Sprintf("%s/%s-%s-console.log", *keepLogs, strings.ReplaceAll(t.Name(), "/", "_"), server[:8])
		if err := os.WriteFile(name, b, 0o644); err == nil {
			t.Logf("guest console: %s", name)
		}
	}
	if t.Failed() {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("guest console of server %s, last lines:\n%s", server, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}

// guestSerials lists the serials of the local guest's block devices.
func (e *env) guestSerials(t *testing.T) []string { return e.serialsOn(t, e.Server) }

// serialsOn lists the serials of a server's guest's block devices.
func (e *env) serialsOn(t *testing.T, server string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.Sim.GuestRunOn(ctx, server, "sh", "-c", "for f in /sys/block/*/serial; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Fields(out)
	sort.Strings(s)
	return s
}

func (e *env) nodeClient() csi.NodeClient { return csi.NewNodeClient(e.node) }

// nodeOf is the node plugin in a server's guest.
func (e *env) nodeOf(server string) csi.NodeClient { return csi.NewNodeClient(e.nodes[server]) }
