package device

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Info is what stat(2) of a path says that matters to the driver.
type Info struct {
	Block bool   // a block device node (or a file one is bind-mounted on)
	Dir   bool   // a directory
	Rdev  uint64 // the device number of a block device node, else 0
}

// Probe stats path, following symlinks. It is the driver's one block-device
// check: every "is this a block device, and which" question goes through it
// (or through a fake of it in tests). Errors are *fs.PathError, so
// errors.Is(err, fs.ErrNotExist) and mount.IsCorruptedMnt work on them.
func Probe(path string) (Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	info := Info{Dir: fi.IsDir()}
	if m := fi.Mode(); m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0 {
		info.Block = true
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			info.Rdev = uint64(st.Rdev) // uint32 on some platforms
		}
	}
	return info, nil
}

// Number is the device number (st_rdev) of the block device at path; two
// paths are the same device exactly when their numbers are equal.
func Number(path string) (uint64, error) {
	return NumberOf(Probe, path)
}

// NumberOf is Number with another stat (a fake of Probe in tests).
func NumberOf(stat func(string) (Info, error), path string) (uint64, error) {
	info, err := stat(path)
	if err != nil {
		return 0, err
	}
	if !info.Block {
		return 0, fmt.Errorf("%s is not a block device", path)
	}
	return info.Rdev, nil
}

// IsBlock reports whether path is (a bind mount of) the block device rdev.
func IsBlock(path string, rdev uint64) bool {
	info, err := Probe(path)
	return err == nil && info.IsBlock(rdev)
}

// IsBlock reports whether info is of the block device rdev.
func (i Info) IsBlock(rdev uint64) bool {
	return i.Block && i.Rdev == rdev
}

// Size is the size in bytes of the block device at path (a /dev node or a
// file the node is bind-mounted on). Seeking to the end asks the kernel for
// the current size, so it follows an online grow without blockdev(8).
func Size(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return size, nil
}
