package virtio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// EmulatedGuestMarker is the file by which the simulator declares that a
// directory of virtio-<serial> links is its emulated guest (cloudsigma-sim
// --guest-devices DIR), where drives are loop devices over files named
// "<drive-uuid>.img" instead of virtio disks with serials. The node's device
// finder accepts that loop identity only when its by-id directory holds this
// file, so the single-machine mode needs no driver flag while a real node
// (by-id dir /dev/disk/by-id, which udev owns and never puts such a file in)
// only ever accepts serials.
const EmulatedGuestMarker = ".cloudsigma-sim-guest"

const markerText = "This directory is the CloudSigma simulator's emulated guest: the CSI\n" +
	"driver's node accepts loop devices backed by <drive-uuid>.img as drives\n" +
	"when its --by-id-dir holds this file. Never create it on a real node.\n"

// DeclareEmulatedGuest creates dir (like os.MkdirAll, mode 0755) and
// writes EmulatedGuestMarker into it. The simulator calls it when it sets
// up its guest-devices directory.
func DeclareEmulatedGuest(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, EmulatedGuestMarker), []byte(markerText), 0o644)
}

// WithdrawEmulatedGuest removes the marker from dir, if it is there.
func WithdrawEmulatedGuest(dir string) error {
	err := os.Remove(filepath.Join(dir, EmulatedGuestMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// IsEmulatedGuest reports whether dir holds the marker as a regular file (a
// link or a directory of that name does not count).
func IsEmulatedGuest(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, EmulatedGuestMarker))
	return err == nil && fi.Mode().IsRegular()
}
