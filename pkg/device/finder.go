// Package device answers one question for the node plugin: which block device
// in this guest is the CloudSigma drive with a given UUID. A wrong answer
// means formatting or mounting someone else's data, so every answer is proven
// (serial or loop backing file, device number, size) and anything unproven is
// refused.
package device

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/google/uuid"
	"k8s.io/klog/v2"
)

// Finder locates the block device of a drive. wantSize is the drive size the
// controller saw at attach time (0 = unknown); both return the /dev path.
type Finder interface {
	// Find waits for the device (a hot-plugged drive appears late), and
	// may ask udev to re-announce the one device it has a reason to look
	// at: for stage, the first lookup of an attached drive.
	Find(ctx context.Context, driveUUID string, wantSize int64) (string, error)
	// FindNow looks once, without waiting and without udev: for calls on a
	// volume that stage already found (stats, health, publish, unstage,
	// expand), which report a missing device rather than wait for one.
	FindNow(ctx context.Context, driveUUID string, wantSize int64) (string, error)
}

// Errors a Finder returns, wrapped with details. Callers map them with
// errors.Is; the node service turns them into gRPC codes.
var (
	// ErrNotFound: no device of this drive is visible (yet).
	ErrNotFound = errors.New("drive device not found")
	// ErrIdentity: a device is where the drive should be, but it cannot be
	// proven to be the drive (wrong serial, no identity, stale node).
	ErrIdentity = errors.New("device identity not proven")
	// ErrAmbiguous: more than one device claims to be the drive.
	ErrAmbiguous = errors.New("more than one device matches the drive")
	// ErrSize: the drive's device is smaller than the drive.
	ErrSize = errors.New("device size does not match the drive")
)

// Defaults for VirtioFinder's zero fields.
const (
	DefaultByIDDir = "/dev/disk/by-id"
	DefaultSysDir  = "/sys"
	DefaultDevDir  = "/dev"
	DefaultTimeout = 30 * time.Second
)

// VirtioFinder finds virtio-blk drives by their serial (see Serial) and, in
// the simulator's emulated guest only (a by-id directory holding
// virtio.EmulatedGuestMarker), loop devices by their backing file
// "<drive-uuid>.img". The zero value uses the real /dev and /sys, and never
// accepts a loop device.
//
// Size rule: the device must be at least wantSize bytes. Larger is accepted
// because CloudSigma drives only grow (offline resize, clone or restore into
// a bigger drive, resize rounding up to 64 KiB) while publish_context keeps
// the size seen at attach; smaller is never legitimate, so it is refused.
type VirtioFinder struct {
	// ByIDDir holds udev's by-id links. The finder only reads it: links are
	// a shortcut it verifies and can do without (a sysfs scan finds the
	// device), and udev alone writes and removes them, so no link the node
	// made can outlive its device and name another drive's.
	ByIDDir string
	SysDir  string // sysfs mount point
	DevDir  string // where the device nodes named in SysDir/block live
	// Trigger asks udev to re-announce one block device, named as in
	// SysDir/block (vdb). Find calls it only for a device it has a reason
	// to look at: one a stale link points to, one found without its link,
	// or one whose serial matches but whose check failed; never for the
	// whole subsystem, and FindNow never. Nil means UdevTrigger on
	// SysDir/class/block/NAME; use NoTrigger to disable it.
	Trigger func(ctx context.Context, name string) error
	// Timeout bounds the retries (hot-plugged devices appear late); the
	// caller's context deadline bounds them too. Zero means DefaultTimeout.
	Timeout time.Duration
	// Backoff is the first pause between tries, doubled up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration

	// Identity forces an identity mode; ModeAuto (zero) detects it (Mode).
	Identity Mode
	// Context reads this server's context (the drives attached to it):
	// evidence for guests whose disks show no usable serial. Nil means
	// such a guest's drives are never identified.
	Context func(ctx context.Context) (*servercontext.Context, error)
	// StateDir keeps the records of drives identified by evidence
	// (records.go); "" means DefaultStateDir. It should outlive the node
	// plugin's process, not the guest's boot.
	StateDir string
	// ProcDir is procfs's mount point ("" = /proc), for the boot ID.
	ProcDir string

	simGuest      atomic.Bool  // ByIDDir was seen to hold the simulator's marker
	detected      atomic.Value // detection, once the mode is known
	contextFailed atomic.Int64 // when the server context last failed to answer (UnixNano)
	evidenceMu    sync.Mutex   // one identification by evidence at a time
	contextMu     sync.Mutex   // one exchange on the server context's port at a time
}

// NoTrigger is a Trigger that does nothing.
func NoTrigger(context.Context, string) error { return nil }

// FindNow implements Finder: one look, no retry, no udev. In a guest
// whose drives are identified by evidence, only a drive identified before
// (by stage) is found: its device instance is remembered.
func (f *VirtioFinder) FindNow(ctx context.Context, driveUUID string, wantSize int64) (string, error) {
	if err := checkDriveUUID(driveUUID); err != nil {
		return "", err
	}
	if mode, _ := f.Mode(ctx); mode.byEvidence() {
		if dev := f.recalled(driveUUID); dev != "" {
			return f.devPath(dev), nil
		}
		return "", fmt.Errorf("%w: drive %s has not been identified on this guest since its device appeared (stage it)", ErrNotFound, driveUUID)
	}
	dev, _, err := f.findOnce(driveUUID, wantSize)
	return dev, err
}

// Find implements Finder.
func (f *VirtioFinder) Find(ctx context.Context, driveUUID string, wantSize int64) (string, error) {
	return f.FindEvidence(ctx, driveUUID, Evidence{Size: wantSize})
}

// FindEvidence implements EvidenceFinder: Find, with the content evidence
// a guest without usable serials needs.
func (f *VirtioFinder) FindEvidence(ctx context.Context, driveUUID string, ev Evidence) (string, error) {
	if err := checkDriveUUID(driveUUID); err != nil {
		return "", err
	}
	wantSize := ev.Size
	start := time.Now()
	deadline := start.Add(orDuration(f.Timeout, DefaultTimeout))
	callerDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callerDeadline = d, true
	}
	backoff := orDuration(f.Backoff, 100*time.Millisecond)
	maxBackoff := orDuration(f.MaxBackoff, 2*time.Second)
	for attempt := 1; ; attempt++ {
		var dev, nudge string
		var err error
		switch mode, _ := f.Mode(ctx); {
		case mode.byEvidence():
			dev, err = f.findByEvidence(ctx, driveUUID, ev)
		case mode == ModeUnknown:
			err = fmt.Errorf("%w: no disk is visible in this guest yet", ErrNotFound)
		default:
			dev, nudge, err = f.findOnce(driveUUID, wantSize)
		}
		if err == nil {
			// Found without its by-id link: let udev make it, for the next
			// lookup's shortcut and for anyone else reading by-id.
			f.nudge(ctx, nudge)
			return dev, nil
		}
		if !retryable(err) {
			return "", err
		}
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			return "", gaveUp(attempt, start, callerDeadline, err)
		}
		klog.V(4).InfoS("Drive device not ready, retrying", "drive", driveUUID, "attempt", attempt, "err", err)
		// A device not in sysfs yet is the hot-plug's business, not
		// udev's: there is nothing to re-announce, only to wait for.
		f.nudge(ctx, nudge)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (%w)", gaveUp(attempt, start, true, err), ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func checkDriveUUID(driveUUID string) error {
	if _, err := uuid.Parse(driveUUID); err != nil || len(driveUUID) != 36 {
		return fmt.Errorf("%w: %q is not a drive UUID", ErrNotFound, driveUUID)
	}
	return nil
}

// nudge asks udev to re-announce the block device name ("" = none).
func (f *VirtioFinder) nudge(ctx context.Context, name string) {
	if name == "" {
		return
	}
	trigger := f.Trigger
	if trigger == nil {
		trigger = func(ctx context.Context, name string) error {
			return UdevTrigger(ctx, filepath.Join(or(f.SysDir, DefaultSysDir), "class", "block", name))
		}
	}
	if err := trigger(ctx, name); err != nil {
		klog.V(4).InfoS("udev trigger failed", "device", name, "err", err)
	}
}

// gaveUp names the tries made and the time they actually took: a caller's
// deadline often ends the wait long before the finder's own Timeout, and
// an error quoting the Timeout would then send the reader the wrong way.
func gaveUp(tries int, start time.Time, byCaller bool, err error) error {
	spent := time.Since(start).Round(time.Millisecond)
	if byCaller {
		return fmt.Errorf("after %d tries in %s (the caller's deadline): %w", tries, spent, err)
	}
	return fmt.Errorf("after %d tries in %s: %w", tries, spent, err)
}

// retryable: a missing device or a stale link may fix itself once udev and
// the hot-plug catch up; two claimants or a too-small device will not.
func retryable(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrIdentity)
}

// findOnce tries the by-id link first, then a sysfs scan; the scan's single
// positively identified device wins. A missing or stale link is left to
// udev: the node never writes into its directory. nudge names the device
// (in SysDir/block) udev could usefully re-announce: the found one when its
// link is missing or stale, else the one a stale link points to or the
// scan's candidate that failed its check; "" when there is none.
func (f *VirtioFinder) findOnce(driveUUID string, wantSize int64) (dev, nudge string, err error) {
	link := f.linkPath(driveUUID)
	loops := f.loopIdentity()
	linkErr, linkTarget := error(nil), ""
	if target, err := resolveLink(link); err == nil {
		dev, verr := f.verify(target, driveUUID, wantSize, loops)
		if verr == nil || errors.Is(verr, ErrSize) {
			return dev, "", verr
		}
		linkTarget = target
		linkErr = fmt.Errorf("link %s -> %s: %w", link, target, verr)
		nudge = f.inSysfs(filepath.Base(target))
	}

	names, refused, err := f.scan(driveUUID, loops)
	if err != nil {
		return "", "", err
	}
	switch len(names) {
	case 0:
		if linkErr != nil {
			return "", nudge, linkErr
		}
		if refused != nil {
			return "", "", fmt.Errorf("%w: no %s and no device in %s with serial %q: %w",
				ErrNotFound, link, f.sysBlock(""), virtio.Serial(driveUUID), refused)
		}
		also := ""
		if loops {
			also = " or a loop backing file named after the drive"
		}
		return "", "", fmt.Errorf("%w: no %s and no device in %s with serial %q%s",
			ErrNotFound, link, f.sysBlock(""), virtio.Serial(driveUUID), also)
	case 1:
		dev, err := f.verify(f.devPath(names[0]), driveUUID, wantSize, loops)
		if err != nil {
			return "", names[0], err
		}
		if dev == linkTarget {
			// The link was right: its device just appeared in sysfs.
			return dev, "", nil
		}
		if linkErr != nil {
			klog.InfoS("Found the drive by a sysfs scan; its by-id link is stale", "device", dev, "stale", linkErr)
		} else {
			klog.V(2).InfoS("Found the drive by a sysfs scan; it has no by-id link", "device", dev, "link", link)
		}
		return dev, names[0], nil
	default:
		return "", "", fmt.Errorf("%w: %s and %s both claim drive %s; refusing to choose",
			ErrAmbiguous, f.devPath(names[0]), f.devPath(names[1]), driveUUID)
	}
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
