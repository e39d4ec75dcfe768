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
	code := m.Run()
	if len(figures.lines) > 0 {
		fmt.Println("=== guest figures ===")
		fmt.Println(strings.Join(figures.lines, "\n"))
	}
	os.Exit(code)
}

// env is the simulator with the QEMU guest as its local server, the
// controller on the host, and a connection to the node plugin in the guest.
type env struct {
	*harness.Env
	node *grpc.ClientConn
}

// start brings everything up and waits for the guest's node plugin.
func start(t *testing.T) *env {
	t.Helper()
	if *imageDir == "" {
		t.Fatal("-image is required: hack/guest-image.sh OUT_DIR builds it (make e2e-guest does)")
	}
	begin := time.Now()
	h := harness.Start(t, harness.Options{QEMU: &cloudsim.QEMUGuest{
		ImageDir: *imageDir, Accel: *accel,
		// The controller's topology value; -v=4 logs every device lookup.
		NodeArgs: []string{"--location=" + harness.Location, "-v=4"},
	}})
	info, _ := h.Sim.GuestInfo()
	t.Cleanup(func() { saveConsole(t, info.ConsoleLog) })
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := h.Sim.GuestReady(ctx); err != nil {
		t.Fatalf("guest (%s: %s): %v", info.Accel, info.AccelReason, err)
	}
	figure(t, "guest boot (QEMU start to node plugin serving)", time.Since(info.Started), info.Accel+": "+info.AccelReason)
	figure(t, "environment up (simulator, controller, guest)", time.Since(begin), "")
	conn, err := grpc.NewClient(h.Sim.GuestCSIEndpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{Env: h, node: conn}
}

func saveConsole(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if *keepLogs != "" {
		name := fmt.Sprintf("%s/%s-console.log", *keepLogs, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.WriteFile(name, b, 0o644); err == nil {
			t.Logf("guest console: %s", name)
		}
	}
	if t.Failed() {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("guest console, last lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}

// guestSerials lists the serials of the guest's block devices.
func (e *env) guestSerials(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.Sim.GuestRun(ctx, "sh", "-c", "for f in /sys/block/*/serial; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Fields(out)
	sort.Strings(s)
	return s
}

func (e *env) nodeClient() csi.NodeClient { return csi.NewNodeClient(e.node) }
