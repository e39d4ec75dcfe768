package virtio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	return DeclareEmulatedGuestSerials(dir, "")
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

// Serial modes of an emulated guest: what its loop devices show in place of
// a virtio serial. The simulator declares one per guest in the marker file
// (DeclareEmulatedGuestSerials) so the node's finder treats each loop device
// as the real guest of that mode would show its disk.
const (
	// GuestSerialUUID: the default. A link virtio-Serial(uuid) per drive,
	// and the loop device's backing file "<drive-uuid>.img" stands for the
	// serial the kernel would report.
	GuestSerialUUID = "uuid"
	// GuestSerialOther: a link virtio-<serial> whose serial names no drive
	// (a hypervisor's own numbering); the backing file is not evidence.
	GuestSerialOther = "other"
	// GuestSerialNone: no serial and no link; the backing file is not
	// evidence.
	GuestSerialNone = "none"
)

// EmulatedBlockDir, inside an emulated guest's directory, holds one link
// per block device the guest sees (name -> /sys/block/<name>): the guest's
// own /sys/block, since every loop device of the machine is in the host's.
const EmulatedBlockDir = ".block"

// EmulatedContextPort, inside an emulated guest's directory, is the
// pseudo-terminal on which the simulator answers server-context requests as
// the hypervisor does on the guest's /dev/ttyS1.
const EmulatedContextPort = "ttyS1"

const serialsKey = "serials: "

// DeclareEmulatedGuestSerials is DeclareEmulatedGuest with a serial mode
// (GuestSerialUUID, GuestSerialOther or GuestSerialNone).
func DeclareEmulatedGuestSerials(dir, mode string) error {
	switch mode {
	case "", GuestSerialUUID, GuestSerialOther, GuestSerialNone:
	default:
		return fmt.Errorf("guest serial mode %q: want %s, %s or %s", mode, GuestSerialUUID, GuestSerialOther, GuestSerialNone)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	text := markerText
	if mode != "" {
		text += serialsKey + mode + "\n"
	}
	return os.WriteFile(filepath.Join(dir, EmulatedGuestMarker), []byte(text), 0o644)
}

// EmulatedGuestSerials is the serial mode an emulated guest's marker
// declares; GuestSerialUUID when it names none.
func EmulatedGuestSerials(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, EmulatedGuestMarker))
	if err != nil {
		return GuestSerialUUID
	}
	for _, line := range strings.Split(string(b), "\n") {
		if mode, ok := strings.CutPrefix(line, serialsKey); ok {
			return strings.TrimSpace(mode)
		}
	}
	return GuestSerialUUID
}
