package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

func (f *VirtioFinder) linkPath(driveUUID string) string {
	return filepath.Join(or(f.ByIDDir, DefaultByIDDir), virtio.ByIDName(driveUUID))
}

func (f *VirtioFinder) sysBlock(name string) string {
	return filepath.Join(or(f.SysDir, DefaultSysDir), "block", name)
}

func (f *VirtioFinder) devPath(name string) string {
	return filepath.Join(or(f.DevDir, DefaultDevDir), name)
}

// inSysfs returns name if SysDir/block has it (a device udev knows), else "".
func (f *VirtioFinder) inSysfs(name string) string {
	if _, err := os.Stat(f.sysBlock(name)); err != nil || name == "" || name == "." {
		return ""
	}
	return name
}

// resolveLink follows the by-id link; a missing or dangling link is an error.
func resolveLink(link string) (string, error) {
	if _, err := os.Lstat(link); err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(link)
}

// verify proves that dev is the drive: a block device whose number matches
// its sysfs entry, whose identity (serial, or backing file where loops are
// allowed) names the drive, and which is at least wantSize bytes.
func (f *VirtioFinder) verify(dev, driveUUID string, wantSize int64, loops bool) (string, error) {
	rdev, err := Number(dev)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	name := filepath.Base(dev)
	sys := f.sysBlock(name)
	num, err := readSysfs(filepath.Join(sys, "dev"))
	if err != nil {
		return "", fmt.Errorf("%w: %s has no sysfs entry: %v", ErrIdentity, dev, err)
	}
	// A node whose number differs from sysfs is stale (e.g. a copied /dev).
	if want := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)); num != want {
		return "", fmt.Errorf("%w: %s is device %s but %s says %s", ErrIdentity, dev, want, sys, num)
	}
	if err := f.identify(name, driveUUID, loops); err != nil {
		return "", err
	}
	if wantSize > 0 {
		size, err := f.sysSize(name)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrIdentity, err)
		}
		if size < wantSize {
			return "", fmt.Errorf("%w: %s holds %d bytes, drive %s has %d", ErrSize, dev, size, driveUUID, wantSize)
		}
	}
	return dev, nil
}

// identify checks what the kernel says the device is. A virtio serial must
// equal the drive's serial. A loop device counts only in the simulator's
// emulated guest (loops, see loopIdentity): there its backing file must be
// named after the full drive UUID. Anything else is unproven and refused.
func (f *VirtioFinder) identify(name, driveUUID string, loops bool) error {
	sys := f.sysBlock(name)
	serial, err := readSysfs(filepath.Join(sys, "serial"))
	if err == nil && serial != "" {
		if virtio.MatchSerial(serial, driveUUID) != virtio.FormNone {
			return nil
		}
		return fmt.Errorf("%w: %s has serial %q, which spells no form of drive %s (%q, its dashless form, or the whole UUID)",
			ErrIdentity, name, serial, driveUUID, virtio.Serial(driveUUID))
	}
	backing, err := readSysfs(filepath.Join(sys, "loop", "backing_file"))
	if err == nil && backing != "" {
		base := strings.ToLower(filepath.Base(strings.TrimSuffix(backing, " (deleted)")))
		named := strings.HasPrefix(base, strings.ToLower(driveUUID))
		switch {
		case !loops && named:
			return fmt.Errorf("%w: %s has no serial: %w", ErrIdentity, name, f.loopRefused(name, backing))
		case !loops:
			return fmt.Errorf("%w: %s has no serial (a loop device backed by %s)", ErrIdentity, name, backing)
		case named:
			return nil
		}
		return fmt.Errorf("%w: %s is backed by %s, not by drive %s", ErrIdentity, name, backing, driveUUID)
	}
	if !loops {
		return fmt.Errorf("%w: %s has no serial", ErrIdentity, name)
	}
	return fmt.Errorf("%w: %s has neither a serial nor a loop backing file", ErrIdentity, name)
}

// loopRefusal marks a loop device that would be the drive in the
// simulator's emulated guest, refused because this is not one.
type loopRefusal struct{ name, backing, byIDDir string }

func (f *VirtioFinder) loopRefused(name, backing string) *loopRefusal {
	return &loopRefusal{name, backing, or(f.ByIDDir, DefaultByIDDir)}
}

func (r *loopRefusal) Error() string {
	return fmt.Sprintf("%s is a loop device backed by %s, and loop devices count as drives only in the simulator's emulated guest, "+
		"whose by-id directory holds a %s file (%s does not)", r.name, r.backing, virtio.EmulatedGuestMarker, r.byIDDir)
}

// scan lists the names in SysDir/block whose identity is the drive, and the
// first loop device refused only for want of the simulator's marker.
func (f *VirtioFinder) scan(driveUUID string, loops bool) ([]string, *loopRefusal, error) {
	entries, err := os.ReadDir(f.sysBlock(""))
	if err != nil {
		return nil, nil, fmt.Errorf("scanning block devices: %w", err)
	}
	var names []string
	var refused *loopRefusal
	for _, e := range entries {
		err := f.identify(e.Name(), driveUUID, loops)
		if err == nil {
			names = append(names, e.Name())
		} else if r := (*loopRefusal)(nil); refused == nil && errors.As(err, &r) {
			refused = r
		}
	}
	return names, refused, nil
}

// loopIdentity reports whether loop devices may be drives: only when the
// by-id directory holds virtio.EmulatedGuestMarker, which the simulator
// writes into its guest-devices directory. This is safe as a production
// path: the default /dev/disk/by-id is udev's, root-owned, and never holds
// that file, and a file written there by mistake is not enough to mislead
// the node: a loop device over a file named after the drive is also needed,
// and only root sets up loop devices. A seen marker is remembered (the
// simulator runs as long as the driver does); a missing one costs one stat
// per look, so a simulator started after the driver is still seen.
func (f *VirtioFinder) loopIdentity() bool {
	if f.simGuest.Load() {
		return true
	}
	dir := or(f.ByIDDir, DefaultByIDDir)
	if !virtio.IsEmulatedGuest(dir) {
		return false
	}
	if !f.simGuest.Swap(true) {
		klog.InfoS("The by-id directory is the simulator's emulated guest: loop devices backed by <drive-uuid>.img count as drives",
			"dir", dir, "marker", virtio.EmulatedGuestMarker)
	}
	return true
}

// sysSize is the device size in bytes; sysfs counts 512-byte sectors
// whatever the logical block size.
func (f *VirtioFinder) sysSize(name string) (int64, error) {
	s, err := readSysfs(filepath.Join(f.sysBlock(name), "size"))
	if err != nil {
		return 0, err
	}
	sectors, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", name, err)
	}
	return sectors * 512, nil
}

// readSysfs reads a sysfs attribute; virtio serials may be NUL padded.
func readSysfs(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.Trim(string(b), " \t\r\n\x00"), nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
