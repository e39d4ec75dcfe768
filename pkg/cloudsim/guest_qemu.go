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

// QEMUGuest makes a server a real Linux guest (package qemu) instead of
// loop devices: the LocalServer with Config.QEMU, more servers with
// Config.QEMUServers. The node plugin runs in it, drives attached to the
// server are hot-plugged as virtio-blk disks, and its CSI socket is served
// on the host at GuestCSIEndpointOf(server).
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
	// Serial is the serial form of this server's disks (SerialVirtio when
	// empty); SetGuestSerial changes it later.
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
	// SerialOther gives each disk a serial unrelated to its drive: QM
	// and the guest's disk count (QM00001, QM00002...), as a hypervisor
	// that numbers its disks would. It names no drive, so the node must
	// identify drives by evidence (docs/identity.md).
	SerialOther = "other"
	// SerialNone plugs disks without a serial.
	SerialNone = "none"
)

// SerialNamesDrive reports whether disks plugged in serial form name their
// drive (a UUID form), so a node can identify drives by serial alone.
func SerialNamesDrive(form string) bool {
	switch form {
	case "", SerialVirtio, SerialHex:
		return true
	}
	return false
}

// serialFor is the serial of drive driveUUID's disk in form; seq numbers
// the guest's disks (SerialOther).
func serialFor(form, driveUUID string, seq int) (string, error) {
	switch form {
	case "", SerialVirtio:
		return virtio.Serial(driveUUID), nil
	case SerialHex:
		s := strings.ReplaceAll(driveUUID, "-", "")
		return s[:min(20, len(s))], nil
	case SerialOther:
		return fmt.Sprintf("QM%05d", seq), nil
	case SerialNone:
		return "", nil
	}
	return "", fmt.Errorf("serial form %q: want %s, %s, %s or %s", form, SerialVirtio, SerialHex, SerialOther, SerialNone)
}

// vmGuest is one server as a QEMU guest. Its VM follows the server's
// power state (boot on start, shutdown on stop, SIGKILL on a crash) and its
// disks follow the drives list, like the loop-device guest. Lock order:
// vmGuest.mu, then the store's.
type vmGuest struct {
	cfg    QEMUGuest
	server string
	dir    string
	ownDir bool
	ln     net.Listener // the host end of the node plugin's CSI socket

	mu      sync.Mutex              // every VM operation, one at a time
	vm      *qemu.VM                // nil while the server is off
	serial  string                  // serial form of the disks plugged from now on
	disks   int                     // disks plugged so far (SerialOther's numbers)
	current atomic.Pointer[qemu.VM] // vm, for the CSI forwarder (never waits on mu)
}

// opTimeout bounds one VM operation (a plug, an unplug's DEVICE_DELETED).
const opTimeout = time.Minute

func newVMGuest(cfg QEMUGuest, server string) (*vmGuest, error) {
	if _, err := serialFor(cfg.Serial, server, 0); err != nil {
		return nil, err
	}
	g := &vmGuest{cfg: cfg, server: server, dir: cfg.Dir, serial: cfg.Serial}
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

// nextSerial is the serial of the next disk plugged, drive id's. Caller
// holds g.mu.
func (g *vmGuest) nextSerial(id string) (string, error) {
	g.disks++
	return serialFor(g.serial, id, g.disks)
}

func (g *vmGuest) setVM(vm *qemu.VM) {
	g.vm = vm
	g.current.Store(vm)
}

// bootLocked starts QEMU with the drives the server holds. Caller holds g.mu.
func (g *vmGuest) bootLocked(st *store) error {
	var disks []qemu.Disk
	for _, id := range st.guestDrives(g.server) {
		serial, err := g.nextSerial(id)
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
		// As on CloudSigma, the context's drives are full drive definitions
		// (size among them), which the node's evidence needs.
		Context: func() map[string]any { return st.contextObject(g.server) },
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
	g.settleDetaches(st)
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
	g.settleDetaches(st)
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
