package device

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

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

// Number is the device number (st_rdev) of the block device at path; two
// paths are the same device exactly when their numbers are equal.
func Number(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device", path)
	}
	return st.Rdev, nil
}
