package cloudsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// QEMUGuest makes the LocalServer a real Linux guest (package qemu) instead
// of loop devices: the node plugin runs in it, drives attached to the
// server are hot-plugged as virtio-blk disks, and its CSI socket is served
// on the host at GuestCSIEndpoint.
type QEMUGuest struct {
	ImageDir string // vmlinuz and initrd.img: hack/guest-image.sh OUT_DIR
	// Dir holds the guest's sockets and logs; "" = a new directory under
	// the system temporary directory, removed on Close.
	Dir       string
	QEMU      string // QEMU binary; default qemu-system-x86_64
	Accel     string // qemu.AccelAuto (default), qemu.AccelKVM or qemu.AccelTCG
	MemoryMiB int    // default 512
	CPUs      int    // default 1
	// NodeArgs are extra flags of the node plugin in the guest, e.g.
	// --location=sim (the topology value the controller reports).
	NodeArgs []string
	// Serial is the serial form of the LocalServer's disks (SerialVirtio
	// when empty); SetGuestSerial changes it later.
	Serial string
}

// Serial forms of a guest's virtio disks.
const (
	// SerialVirtio is pkg/virtio's convention, the driver's assumption
	// about CloudSigma: the first 20 characters of the drive UUID.
	SerialVirtio = "virtio"
	// SerialHex is another plausible form: the first 20 hex digits of the
	// UUID without its dashes.
	SerialHex = "hex"
	// SerialNone plugs disks without a serial.
	SerialNone = "none"
)

func serialFor(form, driveUUID string) (string, error) {
	switch form {
	case "", SerialVirtio:
		return virtio.Serial(driveUUID), nil
	case SerialHex:
		s := strings.ReplaceAll(driveUUID, "-", "")
		return s[:min(20, len(s))], nil
	case SerialNone:
		return "", nil
	}
	return "", fmt.Errorf("serial form %q: want %s, %s or %s", form, SerialVirtio, SerialHex, SerialNone)
}

// vmGuest is the LocalServer as a QEMU guest. Its VM follows the server's
// power state (boot on start, shutdown on stop, SIGKILL on a crash) and its
// disks follow the drives list, like the loop-device guest. Lock order:
// vmGuest.mu, then the store's.
type vmGuest struct {
	cfg    QEMUGuest
	server string
	dir    string
	ownDir bool
	ln     net.Listener // the host end of the node plugin's CSI socket

	mu      sync.Mutex // every VM operation, one at a time
	vm      *qemu.VM   // nil while the server is off
	serials map[string]string
	current atomic.Pointer[qemu.VM] // vm, for the CSI forwarder (never waits on mu)
}

// opTimeout bounds one VM operation (a plug, an unplug's DEVICE_DELETED).
const opTimeout = time.Minute

func newVMGuest(cfg QEMUGuest, server string) (*vmGuest, error) {
	if _, err := serialFor(cfg.Serial, server); err != nil {
		return nil, err
	}
	g := &vmGuest{cfg: cfg, server: server, dir: cfg.Dir, serials: map[string]string{server: cfg.Serial}}
	if g.dir == "" {
		dir, err := os.MkdirTemp("", "csim-guest-")
		if err != nil {
			return nil, err
		}
		g.dir, g.ownDir = dir, true
	}
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(g.dir, "csi.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		g.removeDir()
		return nil, err
	}
	g.ln = ln
	go func() {
		_ = qemu.Forward(ln, func() (io.ReadWriteCloser, error) {
			vm := g.current.Load()
			if vm == nil {
				return nil, errors.New("the guest is off")
			}
			return vm.OpenCSI()
		})
	}()
	return g, nil
}

func (g *vmGuest) removeDir() {
	if g.ownDir {
		_ = os.RemoveAll(g.dir)
	}
}

func (g *vmGuest) setVM(vm *qemu.VM) {
	g.vm = vm
	g.current.Store(vm)
}

// bootLocked starts QEMU with the drives the server holds. Caller holds g.mu.
func (g *vmGuest) bootLocked(st *store) error {
	var disks []qemu.Disk
	for _, id := range st.guestDrives() {
		serial, err := serialFor(g.serials[g.server], id)
		if err != nil {
			return err
		}
		disks = append(disks, qemu.Disk{ID: id, File: st.drivePath(id), Serial: serial})
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	vm, err := qemu.Start(ctx, qemu.Config{
		Name: g.server, ImageDir: g.cfg.ImageDir, Dir: g.dir, QEMU: g.cfg.QEMU, Accel: g.cfg.Accel,
		MemoryMiB: g.cfg.MemoryMiB, CPUs: g.cfg.CPUs, NodeArgs: g.cfg.NodeArgs, Disks: disks,
		Context: func() map[string]any { def, _ := st.serverObject(g.server); return def },
	})
	if err != nil {
		return err
	}
	logf("guest of server %s: QEMU started (%s: %s), %d drives", g.server, vm.Accel, vm.AccelReason, len(disks))
	g.setVM(vm)
	go g.watch(st, vm)
	return nil
}

// watch notices a guest that ended by itself (powered off from inside,
// QEMU died): CloudSigma then shows the server stopped.
func (g *vmGuest) watch(st *store, vm *qemu.VM) {
	<-vm.Done()
	if !g.forget(vm) {
		return // stopped or killed on purpose
	}
	logf("guest of server %s ended by itself (%v): server stopped", g.server, vm.ExitErr())
	_ = st.forceServerStatus(g.server, srvStopped)
	st.settleGuestDetaches()
}

// forget drops vm if it is still the current one.
func (g *vmGuest) forget(vm *qemu.VM) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.vm != vm {
		return false
	}
	g.setVM(nil)
	return true
}

// power boots or shuts down the guest to match the server.
func (g *vmGuest) power(st *store, on bool) {
	if err := g.switchPower(st, on); err != nil {
		logf("guest of server %s: %v", g.server, err)
	}
	st.settleGuestDetaches()
}

// switchPower boots or shuts down the guest, one VM operation at a time.
func (g *vmGuest) switchPower(st *store, on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case on && g.vm == nil:
		return g.bootLocked(st)
	case !on && g.vm != nil:
		vm := g.vm
		g.setVM(nil)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		return vm.Shutdown(ctx)
	}
	return nil
}

// crash kills the guest's QEMU with SIGKILL; false if it was not running.
func (g *vmGuest) crash() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.vm == nil {
		return false
	}
	g.vm.Kill()
	g.setVM(nil)
	return true
}

// close shuts the guest down (the store is closed: nothing to settle).
func (g *vmGuest) close() error {
	g.ln.Close()
	err := g.switchPower(nil, false)
	g.removeDir()
	return err
}

// reconcileVM makes the drive's disk in the guest match the simulated
// state, like reconcileGuest for loop devices; in addition, a drive being
// detached from the running guest leaves the server only once QEMU has
// reported its device deleted (or there is no guest to hold it).
func (st *store) reconcileVM(id string) {
	g := st.vm
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		want, leaving := st.vmWant(id)
		vm := g.vm
		have := vm != nil && vm.HasDisk(id)
		var err error
		switch {
		case want && !have && vm != nil:
			err = g.plugLocked(st, vm, id)
		case !want && have:
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err = vm.RemoveDisk(ctx, id)
			cancel()
		default:
			if leaving && !have {
				st.endGuestDetach(id)
			}
			return
		}
		if err != nil {
			logf("guest disk of drive %s: %v", id, err)
			return
		}
	}
}

func (g *vmGuest) plugLocked(st *store, vm *qemu.VM, id string) error {
	serial, err := serialFor(g.serials[g.server], id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return vm.AddDisk(ctx, qemu.Disk{ID: id, File: st.drivePath(id), Serial: serial})
}

// refreshVM passes a grown backing file on to the guest: block_resize.
func (st *store) refreshVM(id string) {
	g := st.vm
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.vm == nil || !g.vm.HasDisk(id) {
		return
	}
	fi, err := os.Stat(st.drivePath(id))
	if err != nil {
		logf("guest disk of drive %s: %v", id, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := g.vm.ResizeDisk(ctx, id, fi.Size()); err != nil {
		logf("guest disk of drive %s: block_resize: %v", id, err)
	}
}

// vmWant tells whether the drive should be a disk in the guest now (it is
// on the server's drives list and the server is on), and whether it is
// being detached.
func (st *store) vmWant(id string) (want, leaving bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, d := st.servers[st.localServer], st.drives[id]
	if st.closed || v == nil || d == nil {
		return false, false
	}
	_, attached := v.entry(id)
	_, leaving = v.detaching[id]
	if t, ok := v.appearAt[id]; ok && time.Now().Before(t) {
		attached = false
	}
	return attached && v.guestLive(), leaving
}

// guestDrives lists the drives a guest booting now starts with.
func (st *store) guestDrives() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[st.localServer]
	if v == nil || !v.guestLive() {
		return nil
	}
	var ids []string
	for _, e := range v.drives {
		if t, ok := v.appearAt[e.drive]; !ok || !time.Now().Before(t) {
			ids = append(ids, e.drive)
		}
	}
	return ids
}

// endGuestDetach ends a detach of the local server that the guest has
// completed, whichever detach (generation) it is.
func (st *store) endGuestDetach(did string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v := st.servers[st.localServer]; v != nil {
		if _, ok := v.detaching[did]; ok {
			st.endDetachLocked(v, did)
		}
	}
}

// settleGuestDetaches ends the detaches a guest that went away can no
// longer complete.
func (st *store) settleGuestDetaches() {
	for _, id := range st.guestDetaching() {
		st.reconcileVM(id)
	}
}

func (st *store) guestDetaching() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[st.localServer]
	if v == nil {
		return nil
	}
	var ids []string
	for id := range v.detaching {
		ids = append(ids, id)
	}
	return ids
}

// powerGuest makes the LocalServer's QEMU guest follow a power transition
// to status to: it boots as the server starts and shuts down as it stops.
func (st *store) powerGuest(id, to string) {
	if st.vm == nil || id != st.localServer {
		return
	}
	st.vm.power(st, to != srvStopped && to != stUnavailable)
}

// --- The simulator's API for the QEMU guest --------------------------------

// GuestInfo describes the LocalServer's QEMU guest.
type GuestInfo struct {
	Running     bool
	Accel       string // kvm or tcg
	AccelReason string
	Started     time.Time // QEMU started
	ConsoleLog  string    // the guest's console (ttyS0)
	Dir         string    // sockets and logs
}

var errNoQEMU = errors.New("the simulator has no QEMU guest (Config.QEMU)")

// GuestInfo describes the QEMU guest; false without one.
func (s *Sim) GuestInfo() (GuestInfo, bool) {
	if s.vm == nil {
		return GuestInfo{}, false
	}
	info := GuestInfo{Dir: s.vm.dir, ConsoleLog: filepath.Join(s.vm.dir, "console.log")}
	if vm := s.vm.current.Load(); vm != nil {
		info.Running, info.Accel, info.AccelReason, info.Started = true, vm.Accel, vm.AccelReason, vm.Started
	}
	return info, true
}

// GuestCSIEndpoint is the host socket of the node plugin in the QEMU guest
// ("unix:///..."); "" without one.
func (s *Sim) GuestCSIEndpoint() string {
	if s.vm == nil {
		return ""
	}
	return "unix://" + filepath.Join(s.vm.dir, "csi.sock")
}

// GuestReady waits until the QEMU guest has booted and its node plugin
// serves CSI.
func (s *Sim) GuestReady(ctx context.Context) error {
	if s.vm == nil {
		return errNoQEMU
	}
	vm := s.vm.current.Load()
	if vm == nil {
		return errors.New("the local server's guest is off")
	}
	return vm.Ready(ctx)
}

// GuestRun runs a command in the QEMU guest and returns its output; a
// non-zero exit is an error carrying its stderr.
func (s *Sim) GuestRun(ctx context.Context, argv ...string) (string, error) {
	if s.vm == nil {
		return "", errNoQEMU
	}
	vm := s.vm.current.Load()
	if vm == nil {
		return "", errors.New("the local server's guest is off")
	}
	return vm.Run(ctx, argv...)
}

// CrashServer stops a server at once, as a hypervisor crash would: a QEMU
// guest is killed with SIGKILL (no sync, no unmount) and the server shows
// stopped.
func (s *Sim) CrashServer(id string) error {
	if _, ok := s.st.serverCopy(id); !ok {
		return fmt.Errorf("no server %s", id)
	}
	if s.vm != nil && id == s.st.localServer && s.vm.crash() {
		logf("guest of server %s killed (SIGKILL)", id)
	}
	if err := s.st.forceServerStatus(id, srvStopped); err != nil {
		return err
	}
	s.st.settleGuestDetachesOf(id)
	return nil
}

// settleGuestDetachesOf settles the detaches of the QEMU guest's server.
func (st *store) settleGuestDetachesOf(id string) {
	if st.vm != nil && id == st.localServer {
		st.settleGuestDetaches()
	}
}

// SetGuestSerial sets the serial form (SerialVirtio, SerialHex, SerialNone)
// of the disks plugged into a server's guest from now on.
func (s *Sim) SetGuestSerial(id, form string) error {
	if s.vm == nil {
		return errNoQEMU
	}
	if _, err := serialFor(form, id); err != nil {
		return err
	}
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	s.vm.serials[id] = form
	return nil
}
