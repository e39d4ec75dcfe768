package device

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"golang.org/x/sys/unix"
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
// its sysfs entry, whose identity (serial or backing file) names the drive,
// and which is at least wantSize bytes.
func (f *VirtioFinder) verify(dev, driveUUID string, wantSize int64) (string, error) {
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
	if err := f.identify(name, driveUUID); err != nil {
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
// equal the drive's serial; a loop device's backing file must be named after
// the full drive UUID (the simulator's emulated guest); anything else is
// unproven and refused.
func (f *VirtioFinder) identify(name, driveUUID string) error {
	sys := f.sysBlock(name)
	serial, err := readSysfs(filepath.Join(sys, "serial"))
	if err == nil && serial != "" {
		if strings.EqualFold(serial, virtio.Serial(driveUUID)) {
			return nil
		}
		return fmt.Errorf("%w: %s has serial %q, drive %s needs %q", ErrIdentity, name, serial, driveUUID, virtio.Serial(driveUUID))
	}
	backing, err := readSysfs(filepath.Join(sys, "loop", "backing_file"))
	if err == nil && backing != "" {
		base := strings.ToLower(filepath.Base(strings.TrimSuffix(backing, " (deleted)")))
		if strings.HasPrefix(base, strings.ToLower(driveUUID)) {
			return nil
		}
		return fmt.Errorf("%w: %s is backed by %s, not by drive %s", ErrIdentity, name, backing, driveUUID)
	}
	return fmt.Errorf("%w: %s has neither a serial nor a loop backing file", ErrIdentity, name)
}

// scan lists the names in SysDir/block whose identity is the drive.
func (f *VirtioFinder) scan(driveUUID string) ([]string, error) {
	entries, err := os.ReadDir(f.sysBlock(""))
	if err != nil {
		return nil, fmt.Errorf("scanning block devices: %w", err)
	}
	var names []string
	for _, e := range entries {
		if f.identify(e.Name(), driveUUID) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
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
