package cloudsim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu"
)

// The simulator's API for its QEMU guests. The functions without a server
// argument are about the LocalServer's guest (Config.QEMU).

// newVMGuests makes the QEMU guests (not booted yet): the LocalServer's
// with Config.QEMU, and one per Config.QEMUServers entry. A failure
// releases the ones already made.
func newVMGuests(cfg Config) (map[string]*vmGuest, error) {
	want := maps.Clone(cfg.QEMUServers)
	if want == nil {
		want = map[string]QEMUGuest{}
	}
	for id, q := range want {
		if _, err := uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("QEMU guest server %q is not a UUID", id)
		}
		if id == cfg.LocalServer {
			return nil, fmt.Errorf("QEMU guest server %s is the local server: use Config.QEMU (--guest-qemu) for it", id)
		}
		if q.ImageDir == "" {
			return nil, fmt.Errorf("QEMU guest server %s has no image directory", id)
		}
	}
	if cfg.QEMU != nil {
		want[cfg.LocalServer] = *cfg.QEMU
	}
	vms := map[string]*vmGuest{}
	dirs := map[string]string{}
	fail := func(err error) (map[string]*vmGuest, error) {
		for _, g := range vms {
			_ = g.close()
		}
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if d := want[id].Dir; d != "" {
			abs, err := filepath.Abs(d)
			if err != nil {
				return fail(err)
			}
			if other, ok := dirs[abs]; ok {
				return fail(fmt.Errorf("servers %s and %s share the QEMU guest directory %s: each guest needs its own", other, id, abs))
			}
			dirs[abs] = id
		}
		g, err := newVMGuest(want[id], id)
		if err != nil {
			return fail(err)
		}
		vms[id] = g
	}
	return vms, nil
}

// bootVMs boots every QEMU guest (their servers run at start). Where QEMU
// cannot start, it fails with the reason.
func (s *Sim) bootVMs() error {
	for _, id := range slices.Sorted(maps.Keys(s.vms)) {
		if err := s.vms[id].switchPower(s.st, true); err != nil {
			return fmt.Errorf("guest of server %s: %w", id, err)
		}
	}
	return nil
}

// GuestInfo describes a server's QEMU guest.
type GuestInfo struct {
	Running     bool
	Accel       string // kvm or tcg
	AccelReason string
	Started     time.Time // QEMU started
	ConsoleLog  string    // the guest's console (ttyS0)
	Dir         string    // sockets and logs
}

var errNoQEMU = errors.New("the simulator has no QEMU guest for this server (Config.QEMU, Config.QEMUServers)")

// GuestInfo describes the LocalServer's QEMU guest; false without one.
func (s *Sim) GuestInfo() (GuestInfo, bool) { return s.GuestInfoOf(s.st.localServer) }

// GuestInfoOf describes a server's QEMU guest; false without one.
func (s *Sim) GuestInfoOf(server string) (GuestInfo, bool) {
	g := s.vms[server]
	if g == nil {
		return GuestInfo{}, false
	}
	info := GuestInfo{Dir: g.dir, ConsoleLog: filepath.Join(g.dir, "console.log")}
	if vm := g.current.Load(); vm != nil {
		info.Running, info.Accel, info.AccelReason, info.Started = true, vm.Accel, vm.AccelReason, vm.Started
	}
	return info, true
}

// GuestCSIEndpoint is the host socket of the node plugin in the
// LocalServer's QEMU guest ("unix:///..."); "" without one.
func (s *Sim) GuestCSIEndpoint() string { return s.GuestCSIEndpointOf(s.st.localServer) }

// GuestCSIEndpointOf is the host socket of the node plugin in a server's
// QEMU guest; "" without one.
func (s *Sim) GuestCSIEndpointOf(server string) string {
	g := s.vms[server]
	if g == nil {
		return ""
	}
	return "unix://" + filepath.Join(g.dir, "csi.sock")
}

// GuestReady waits until the LocalServer's QEMU guest serves CSI.
func (s *Sim) GuestReady(ctx context.Context) error { return s.GuestReadyOf(ctx, s.st.localServer) }

// GuestReadyOf waits until a server's QEMU guest has booted and its node
// plugin serves CSI.
func (s *Sim) GuestReadyOf(ctx context.Context, server string) error {
	vm, err := s.runningVM(server)
	if err != nil {
		return err
	}
	return vm.Ready(ctx)
}

// GuestRun runs a command in the LocalServer's QEMU guest.
func (s *Sim) GuestRun(ctx context.Context, argv ...string) (string, error) {
	return s.GuestRunOn(ctx, s.st.localServer, argv...)
}

// GuestRunOn runs a command in a server's QEMU guest and returns its
// output; a non-zero exit is an error carrying its stderr.
func (s *Sim) GuestRunOn(ctx context.Context, server string, argv ...string) (string, error) {
	vm, err := s.runningVM(server)
	if err != nil {
		return "", err
	}
	return vm.Run(ctx, argv...)
}

func (s *Sim) runningVM(server string) (*qemu.VM, error) {
	g := s.vms[server]
	if g == nil {
		return nil, fmt.Errorf("server %s: %w", server, errNoQEMU)
	}
	vm := g.current.Load()
	if vm == nil {
		return nil, fmt.Errorf("the guest of server %s is off", server)
	}
	return vm, nil
}

// CrashServer stops a server at once, as a hypervisor crash would: a QEMU
// guest is killed with SIGKILL (no sync, no unmount) and the server shows
// stopped.
func (s *Sim) CrashServer(id string) error {
	if _, ok := s.st.serverCopy(id); !ok {
		return fmt.Errorf("no server %s", id)
	}
	if g := s.vms[id]; g != nil && g.crash() {
		logf("guest of server %s killed (SIGKILL)", id)
	}
	if err := s.st.forceServerStatus(id, srvStopped); err != nil {
		return err
	}
	s.st.settleGuestDetachesOf(id)
	return nil
}

// SetGuestSerial sets the serial form (SerialVirtio, SerialHex, SerialOther, SerialNone)
// of the disks plugged into a server's QEMU guest from now on (a disk
// already plugged keeps its serial).
func (s *Sim) SetGuestSerial(id, form string) error {
	g := s.vms[id]
	if g == nil {
		return fmt.Errorf("server %s: %w", id, errNoQEMU)
	}
	if _, err := serialFor(form, id, 0); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serial = form
	return nil
}
