package cloudsim

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/google/uuid"
)

func newGuestEnv(t *testing.T, mutate func(*Config)) (*env, string, string) {
	testenv.RequireRoot(t, "guest devices are loop devices")
	local, dir := uuid.NewString(), t.TempDir()
	var e *env
	// Registered first, so it runs after the simulator has closed.
	t.Cleanup(func() {
		if e != nil {
			assertNoLoops(t, e.sim.DataDir())
		}
	})
	e = newEnv(t, func(c *Config) {
		c.LocalServer, c.GuestDevicesDir = local, dir
		if mutate != nil {
			mutate(c)
		}
	})
	return e, local, dir
}

// loopsBackedBy lists loop devices whose backing file is under dir.
func loopsBackedBy(dir string) []string {
	var out []string
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			out = append(out, p)
		}
	}
	return out
}

func assertNoLoops(t *testing.T, dir string) {
	t.Helper()
	if l := loopsBackedBy(dir); len(l) > 0 {
		t.Errorf("loop devices leaked: %v", l)
	}
}

func loopSize(t *testing.T, dev string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "size"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n * 512
}

func TestGuestDevices(t *testing.T) {
	e, local, dir := newGuestEnv(t, nil)
	id := e.createDrive("g", gib, nil)
	elsewhere := e.createDrive("elsewhere", gib, nil)
	e.attach(e.sim.CreateServer("other", true), elsewhere, "0:0")

	e.attach(local, id, "0:0")
	// The device exists by the time the PUT has answered.
	dev := e.sim.GuestDevices()[id]
	if dev == "" || len(e.sim.GuestDevices()) != 1 {
		t.Fatalf("guest devices after attach: %v", e.sim.GuestDevices())
	}
	link := filepath.Join(dir, virtio.ByIDName(id))
	if target, err := os.Readlink(link); err != nil || target != dev || e.sim.GuestLink(id) != link {
		t.Fatalf("link %s -> %q (%v), want %s", link, target, err, dev)
	}
	d, _ := e.sim.Drive(id)
	if backingFile(dev) != d.BackingFile || loopSize(t, dev) != gib {
		t.Fatalf("%s: backing %q size %d", dev, backingFile(dev), loopSize(t, dev))
	}
	// Writes through the device land in the drive.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("written by the guest")
	if _, err := f.WriteAt(msg, 8192); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readAt(t, d.BackingFile, 8192, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("backing file holds %q", got)
	}

	// Detach is asynchronous: the device stays until the detach delay.
	e.detach(local, id)
	if e.sim.GuestDevices()[id] == "" {
		t.Fatal("guest device gone before the detach delay")
	}
	e.waitStatus(id, "unmounted")
	waitFor(t, "device removed", func() bool { return len(e.sim.GuestDevices()) == 0 })
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link still there: %v", err)
	}
	assertNoLoops(t, e.sim.DataDir())

	// A resize (offline: the local server is stopped) grows the device.
	e.attach(local, id, "0:1")
	dev = e.sim.GuestDevices()[id]
	if err := e.sim.SetServerStatus(local, "stopped"); err != nil {
		t.Fatal(err)
	}
	e.call("POST", "/drives/"+id+"/action/?do=resize", map[string]any{"name": "g", "media": "disk", "size": 2 * gib}, http.StatusAccepted)
	e.waitStatus(id, "mounted")
	waitFor(t, "capacity", func() bool { return loopSize(t, dev) == 2*gib })

	// Deleting an attached drive removes its device; Close removes the rest.
	e.call("DELETE", "/drives/"+id+"/", nil, http.StatusNoContent)
	waitFor(t, "deleted drive's device", func() bool { return e.sim.GuestDevices()[id] == "" })
	other := e.createDrive("h", gib, nil)
	e.attach(local, other, "0:2")
	if len(loopsBackedBy(e.sim.DataDir())) != 1 {
		t.Fatal("expected one loop device")
	}
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoLoops(t, e.sim.DataDir())
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("links left after Close: %v", entries)
	}
}

func TestGuestDeviceAppearsLate(t *testing.T) {
	e, local, _ := newGuestEnv(t, func(c *Config) { c.Delays.GuestAppear = 200 * time.Millisecond })
	id := e.createDrive("late", gib, nil)
	start := time.Now()
	e.attach(local, id, "0:0")
	if dev := e.sim.GuestDevices()[id]; dev != "" && time.Since(start) < 200*time.Millisecond {
		t.Fatalf("device %s appeared at once", dev)
	}
	waitFor(t, "late device", func() bool { return e.sim.GuestDevices()[id] != "" })
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("device appeared before the GuestAppear delay")
	}
}

// Two loop-device guests on one machine: a drive moved from one server to
// the other leaves the first guest's devices and appears in the second's,
// with the data written through the first; a stopped server keeps its
// devices until its drive is taken off it.
func TestGuestServers(t *testing.T) {
	other, otherDir := uuid.NewString(), t.TempDir()
	e, local, dir := newGuestEnv(t, func(c *Config) { c.GuestServers = map[string]string{other: otherDir} })
	if s, ok := e.sim.Server(other); !ok || s.Status != "running" {
		t.Fatalf("guest server %s: %+v, %v; want it created running", other, s, ok)
	}
	id := e.createDrive("moving", gib, nil)
	e.attach(other, id, "0:0")
	dev := e.sim.GuestDevicesOf(other)[id]
	if dev == "" || len(e.sim.GuestDevices()) != 0 {
		t.Fatalf("after attaching to the guest server: its devices %v, the local server's %v", e.sim.GuestDevicesOf(other), e.sim.GuestDevices())
	}
	if target, err := os.Readlink(filepath.Join(otherDir, virtio.ByIDName(id))); err != nil || target != dev {
		t.Fatalf("link in %s -> %q (%v), want %s", otherDir, target, err, dev)
	}
	msg := []byte("written on the other server")
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(msg, 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if err := e.sim.SetServerStatus(other, "stopped"); err != nil {
		t.Fatal(err)
	}
	if e.sim.GuestDevicesOf(other)[id] == "" {
		t.Fatal("a stopped server's device went before its drive left the server")
	}
	e.detach(other, id)
	e.waitStatus(id, "unmounted")
	waitFor(t, "device gone from the stopped server", func() bool { return len(e.sim.GuestDevicesOf(other)) == 0 })
	e.attach(local, id, "0:0")
	got := e.sim.GuestDevices()[id]
	if got == "" {
		t.Fatal("no device on the local server after the move")
	}
	if data := readAt(t, got, 4096, len(msg)); !bytes.Equal(data, msg) {
		t.Fatalf("the local server reads %q", data)
	}
	if _, err := os.Lstat(filepath.Join(dir, virtio.ByIDName(id))); err != nil {
		t.Fatalf("no link in the local server's directory: %v", err)
	}
}

func TestGuestServersRefused(t *testing.T) {
	testenv.RequireRoot(t, "guest devices are loop devices")
	local, dir := uuid.NewString(), t.TempDir()
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"not a UUID", Config{GuestServers: map[string]string{"node-a": dir}}, "not a UUID"},
		{"the local server", Config{LocalServer: local, GuestServers: map[string]string{local: dir}}, "--guest-devices"},
		{"no directory", Config{GuestServers: map[string]string{local: ""}}, "no devices directory"},
		{"shared directory", Config{LocalServer: local, GuestDevicesDir: dir, GuestServers: map[string]string{uuid.NewString(): dir}}, "share"},
		{"devices without a local server", Config{GuestDevicesDir: dir}, "--local-server"},
	} {
		c.cfg.Username, c.cfg.Password = "u", "p"
		s, err := New(c.cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", c.name, err, c.want)
		}
	}
	assertNoLoops(t, dir)
}
