package cloudsim

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// guest emulates, on this machine, the block devices one server's guest
// would see (the LocalServer's, or one of Config.GuestServers): one loop
// device per attached drive over its backing file, and a link named like
// /dev/disk/by-id/virtio-<serial> to it. Devices follow the server's drives
// list (including drives still being detached), not its power state. It
// only ever detaches loop devices it made itself.
type guest struct {
	server  string
	dir     string
	serials string             // virtio.GuestSerialUUID, Other or None (guest_identity.go)
	mu      sync.Mutex         // serializes every loop operation
	devs    map[string]loopDev // drive UUID -> device
	seq     int                // the last serial of mode other
	ctxPort []*os.File         // the server context's pty (master, slave)
}

type loopDev struct{ dev, file, link string }

func newGuest(server, dir, serials string) (*guest, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("guest devices need root (loop devices)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		return nil, fmt.Errorf("guest devices need losetup: %w", err)
	}
	if serials == "" {
		serials = virtio.GuestSerialUUID
	}
	if err := virtio.DeclareEmulatedGuestSerials(dir, serials); err != nil { // MkdirAll + the marker the node's finder looks for
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, virtio.EmulatedBlockDir), 0o755); err != nil {
		return nil, err
	}
	return &guest{server: server, dir: abs, serials: serials, devs: map[string]loopDev{}}, nil
}

// startGuests makes the loop-device guests: the LocalServer's with
// GuestDevicesDir, and one per GuestServers entry. A failure releases the
// ones already made.
func (s *Sim) startGuests(cfg Config) error {
	want := maps.Clone(cfg.GuestServers)
	if want == nil {
		want = map[string]string{}
	}
	dirs := map[string]string{}
	for id, dir := range want {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("guest server %q is not a UUID", id)
		}
		if id == cfg.LocalServer {
			return fmt.Errorf("guest server %s is the local server: use GuestDevicesDir (--guest-devices) for its devices", id)
		}
		if dir == "" {
			return fmt.Errorf("guest server %s has no devices directory", id)
		}
	}
	if cfg.GuestDevicesDir != "" {
		if cfg.LocalServer == "" {
			return errors.New("guest devices need a local server (--local-server)")
		}
		want[cfg.LocalServer] = cfg.GuestDevicesDir
	}
	s.guests = map[string]*guest{}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		abs, err := filepath.Abs(want[id])
		if err != nil {
			return err
		}
		if other, ok := dirs[abs]; ok {
			return fmt.Errorf("servers %s and %s share the guest devices directory %s: each guest needs its own", other, id, abs)
		}
		dirs[abs] = id
		g, err := newGuest(id, abs, cfg.GuestSerials[id])
		if err == nil {
			s.guests[id] = g
			// The store is made after the guests: read it at each request.
			err = g.serveContext(func() map[string]any { return s.st.contextObject(id) })
		}
		if err != nil {
			for _, made := range s.guests {
				_ = made.closeAll()
			}
			s.guests = nil
			return err
		}
	}
	return nil
}

// guestWant tells whether the drive should have a device in the server's
// guest now, and the file it would be backed by.
func (st *store) guestWant(server, id string) (bool, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	path := st.drivePath(id)
	if st.closed || server == "" {
		return false, path
	}
	v, d := st.servers[server], st.drives[id]
	if v == nil || d == nil {
		return false, path
	}
	_, attached := v.entry(id)
	_, leaving := v.detaching[id]
	if !attached && !leaving {
		return false, path
	}
	if t, ok := v.appearAt[id]; ok && time.Now().Before(t) {
		return false, path
	}
	return true, path
}

// reconcileGuest makes the drive's devices in every guest match the
// simulated state.
func (st *store) reconcileGuest(id string) {
	for _, g := range st.vms {
		g.reconcile(st, id)
	}
	for _, g := range st.guests {
		g.reconcile(st, id)
	}
}

// hasGuest: the server's drives become devices somewhere (a loop-device
// guest or a QEMU guest).
func (st *store) hasGuest(server string) bool {
	return st.guests[server] != nil || st.vms[server] != nil
}

// reconcile makes the drive's device in this guest match the simulated
// state. Reading the state under the guest lock (lock order: guest, then
// store) means the last reconcile of a drive always sees its latest state,
// whatever order callers ran in.
func (g *guest) reconcile(st *store, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	want, path := st.guestWant(g.server, id)
	_, have := g.devs[id]
	var err error
	switch {
	case want && !have:
		err = g.attachLocked(id, path)
	case !want && have:
		err = g.detachLocked(id)
	}
	if err != nil {
		logf("guest device of drive %s: %v", id, err)
	}
}

func (g *guest) attachLocked(id, file string) error {
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real // the kernel reports the resolved path as backing file
	}
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("losetup --find %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	link := ""
	if name := g.linkName(id); name != "" {
		link = filepath.Join(g.dir, name)
		if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			_ = os.Remove(link)
		}
		if err := os.Symlink(dev, link); err != nil {
			_ = exec.Command("losetup", "-d", dev).Run()
			return err
		}
	}
	g.showBlock(dev, true)
	g.devs[id] = loopDev{dev: dev, file: file, link: link}
	return nil
}

func (g *guest) detachLocked(id string) error {
	ld := g.devs[id]
	delete(g.devs, id)
	if target, err := os.Readlink(ld.link); ld.link != "" && err == nil && target == ld.dev {
		_ = os.Remove(ld.link)
	}
	g.showBlock(ld.dev, false)
	if backingFile(ld.dev) != ld.file {
		return nil // no longer ours: never touch it
	}
	// A busy device (still mounted) is only marked for autoclear; it goes
	// away when its last user closes it.
	if out, err := exec.Command("losetup", "-d", ld.dev).CombinedOutput(); err != nil {
		return fmt.Errorf("losetup -d %s: %v: %s", ld.dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// refresh makes an attached loop device pick up its file's new size.
func (g *guest) refresh(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ld, ok := g.devs[id]
	if !ok || backingFile(ld.dev) != ld.file {
		return
	}
	if out, err := exec.Command("losetup", "-c", ld.dev).CombinedOutput(); err != nil {
		logf("losetup -c %s: %v: %s", ld.dev, err, strings.TrimSpace(string(out)))
	}
}

func (g *guest) closeAll() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closeContext()
	errs := []error{virtio.WithdrawEmulatedGuest(g.dir)}
	for id := range g.devs {
		errs = append(errs, g.detachLocked(id))
	}
	_ = os.Remove(filepath.Join(g.dir, virtio.EmulatedBlockDir)) // empty now
	return errors.Join(errs...)
}

func (g *guest) devices() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]string, len(g.devs))
	for id, ld := range maps.All(g.devs) {
		out[id] = ld.dev
	}
	return out
}

// backingFile reads which file a loop device is bound to ("" if none).
func backingFile(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
}
