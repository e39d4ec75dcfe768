package device

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// Mode is how this guest lets the node tell its drives apart
// (docs/identity.md). It is detected from what the guest shows, not
// configured; VirtioFinder.Identity can force it.
type Mode string

const (
	// ModeAuto (the empty mode) detects the mode from the guest.
	ModeAuto Mode = ""
	// ModeUUIDSerial: disks show a serial spelling their drive's UUID
	// (virtio.MatchSerial); the serial alone identifies a drive.
	ModeUUIDSerial Mode = "uuid-serial"
	// ModeOtherSerial: disks show serials that name no drive of this
	// server; drives are identified by evidence.
	ModeOtherSerial Mode = "other-serial"
	// ModeNoSerial: disks show no serial; drives are identified by
	// evidence.
	ModeNoSerial Mode = "no-serial"
	// ModeUnknown: nothing to tell from yet (no disk visible).
	ModeUnknown Mode = "unknown"
)

// Modes lists the modes a flag may force, and the detected ones.
var Modes = []Mode{ModeUUIDSerial, ModeOtherSerial, ModeNoSerial}

// ParseMode reads a --drive-identity value: auto or one of Modes.
func ParseMode(s string) (Mode, error) {
	if s == "" || s == "auto" {
		return ModeAuto, nil
	}
	for _, m := range Modes {
		if Mode(s) == m {
			return m, nil
		}
	}
	return ModeAuto, fmt.Errorf("drive identity %q: want auto, %s, %s or %s", s, ModeUUIDSerial, ModeOtherSerial, ModeNoSerial)
}

// byEvidence: the mode identifies drives by evidence rather than serial.
func (m Mode) byEvidence() bool { return m == ModeOtherSerial || m == ModeNoSerial }

// Mode is the identity mode: forced, or detected from the disks' serials
// against the server context (which lists this server's drives, the boot
// drive at least): a serial spelling a listed drive's UUID means
// uuid-serial; serials that spell none mean other-serial; no serials at all
// mean no-serial. The detail says what the guest showed, for the log and
// for the operator to report. A detected mode is kept: the hypervisor's
// convention does not change under a running guest.
func (f *VirtioFinder) Mode(ctx context.Context) (Mode, string) {
	if f.Identity != ModeAuto {
		return f.Identity, "forced by configuration"
	}
	if m, ok := f.detected.Load().(detection); ok {
		return m.mode, m.detail
	}
	if f.loopIdentity() && virtio.EmulatedGuestSerials(or(f.ByIDDir, DefaultByIDDir)) == virtio.GuestSerialUUID {
		return ModeUUIDSerial, "the simulator's emulated guest, whose loop devices stand for disks with UUID serials"
	}
	if f.Context == nil {
		return ModeUUIDSerial, "no server context configured: serials only"
	}
	if t := f.contextFailed.Load(); t != 0 && time.Since(time.Unix(0, t)) < contextRetry {
		return ModeUUIDSerial, "server context unreadable: serials only until it answers"
	}
	sc, err := f.readContext(ctx)
	if err != nil {
		// Asked again only after contextRetry: a guest without a context
		// must not pay a context timeout on every lookup.
		f.contextFailed.Store(time.Now().UnixNano())
		// Without the list of this server's drives neither a serial nor
		// evidence can be checked against it: serials only, detect later.
		return ModeUUIDSerial, fmt.Sprintf("server context unreadable (%v): serials only until it answers", err)
	}
	m := f.detect(sc)
	if m.mode != ModeUnknown && f.detected.CompareAndSwap(nil, m) {
		klog.InfoS("Drive identity mode detected: tell the driver's maintainers if this is a real CloudSigma guest", "mode", m.mode, "evidence", m.detail)
	}
	return m.mode, m.detail
}

// readContext reads the server context, one caller at a time: the port is
// one serial line, and two requests in flight would each read a share of
// the other's reply.
func (f *VirtioFinder) readContext(ctx context.Context) (*servercontext.Context, error) {
	f.contextMu.Lock()
	defer f.contextMu.Unlock()
	return f.Context(ctx)
}

// contextRetry spaces the reads of a server context that did not answer.
const contextRetry = time.Minute

type detection struct {
	mode   Mode
	detail string
}

func (f *VirtioFinder) detect(sc *servercontext.Context) detection {
	names, err := f.disks()
	if err != nil {
		return detection{ModeUnknown, fmt.Sprintf("listing disks: %v", err)}
	}
	if len(names) == 0 {
		return detection{ModeUnknown, "no disk visible yet"}
	}
	listed := 0
	for _, d := range sc.Drives {
		if d.Device != "ide" {
			listed++
		}
	}
	if listed == 0 {
		// Serials can only be judged against drives of this server: a
		// disk the context does not list (a simulator's root image) says
		// nothing about the hypervisor's convention.
		return detection{ModeUnknown, fmt.Sprintf("the server context lists no drive yet (%d disks visible)", len(names))}
	}
	var serials []string
	for _, name := range names {
		s := f.serialOf(name)
		if s == "" {
			continue
		}
		serials = append(serials, name+"="+s)
		for _, d := range sc.Drives {
			if form := virtio.MatchSerial(s, d.DriveUUID); form != virtio.FormNone {
				return detection{ModeUUIDSerial, fmt.Sprintf("%s shows serial %q, the %s form of drive %s in the server context", name, s, form, d.DriveUUID)}
			}
		}
	}
	if len(serials) > 0 {
		return detection{ModeOtherSerial, fmt.Sprintf("%d of %d disks show serials naming no drive of this server: %s", len(serials), len(names), strings.Join(serials, ", "))}
	}
	return detection{ModeNoSerial, fmt.Sprintf("none of %d disks (%s) shows a serial", len(names), strings.Join(names, ", "))}
}

// notDisks are kernel block devices that are never a CloudSigma drive.
var notDisks = []string{"loop", "ram", "zram", "sr", "dm-", "md", "nbd", "fd"}

// disks lists the guest's whole-disk block devices that may be drives: in
// the simulator's emulated guest its own block directory (loop devices),
// else SysDir/block less the kinds in notDisks.
func (f *VirtioFinder) disks() ([]string, error) {
	if dir, ok := f.emulatedBlockDir(); ok {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out, nil
	}
	entries, err := os.ReadDir(f.sysBlock(""))
	if err != nil {
		return nil, err
	}
	var out []string
next:
	for _, e := range entries {
		for _, p := range notDisks {
			if strings.HasPrefix(e.Name(), p) {
				continue next
			}
		}
		out = append(out, e.Name())
	}
	return out, nil
}

// emulatedBlockDir is the emulated guest's own block directory when the
// simulator declared a serial mode other than uuid (which keeps the
// original loop-device identity, identify). Mode uuid is not detected but
// taken from the marker: there the host's own disks would be in the way.
func (f *VirtioFinder) emulatedBlockDir() (string, bool) {
	dir := or(f.ByIDDir, DefaultByIDDir)
	if !f.loopIdentity() || virtio.EmulatedGuestSerials(dir) == virtio.GuestSerialUUID {
		return "", false
	}
	return filepath.Join(dir, virtio.EmulatedBlockDir), true
}

// serialOf is the serial the device shows: sysfs's, or in an emulated
// guest the one its by-id link spells (mode other), or for the default
// emulated mode the drive UUID its backing file is named after.
func (f *VirtioFinder) serialOf(name string) string {
	if s, err := readSysfs(filepath.Join(f.sysBlock(name), "serial")); err == nil && s != "" {
		return s
	}
	if !f.loopIdentity() {
		return ""
	}
	dir := or(f.ByIDDir, DefaultByIDDir)
	switch virtio.EmulatedGuestSerials(dir) {
	case virtio.GuestSerialUUID:
		backing, _ := readSysfs(filepath.Join(f.sysBlock(name), "loop", "backing_file"))
		base := filepath.Base(strings.TrimSuffix(backing, " (deleted)"))
		if id, ok := strings.CutSuffix(base, ".img"); ok && len(id) == 36 {
			return virtio.Serial(id)
		}
		return ""
	case virtio.GuestSerialOther:
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			s, ok := strings.CutPrefix(e.Name(), "virtio-")
			if !ok {
				continue
			}
			if target, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name())); err == nil && filepath.Base(target) == name {
				return s
			}
		}
	}
	return ""
}
