package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
)

// The mount table is the node's only state: it says what is staged or
// published where, and from which device, even after a restart.

const mountInfoPath = "/proc/self/mountinfo"

type mountTable []mount.MountInfo

func readMounts() (mountTable, error) {
	return mount.ParseMountInfo(mountInfoPath)
}

// at returns the topmost mount on path, or nil.
func (t mountTable) at(path string) *mount.MountInfo {
	path = filepath.Clean(path)
	for i := len(t) - 1; i >= 0; i-- {
		if t[i].MountPoint == path {
			return &t[i]
		}
	}
	return nil
}

// isDevice reports whether m is a mount of the filesystem on rdev.
func isDevice(m *mount.MountInfo, rdev uint64) bool {
	return uint32(m.Major) == unix.Major(rdev) && uint32(m.Minor) == unix.Minor(rdev)
}

// readOnly reports a read-only mount.
func readOnly(m *mount.MountInfo) bool {
	return slices.Contains(m.MountOptions, "ro")
}

// fsUsers lists the mount points of the filesystem on rdev, except skip.
func (t mountTable) fsUsers(rdev uint64, skip ...string) []string {
	var out []string
	for i := range t {
		if isDevice(&t[i], rdev) && !slices.Contains(skip, t[i].MountPoint) {
			out = append(out, t[i].MountPoint)
		}
	}
	return out
}

// nodeUsers lists the files the device node of rdev is bind-mounted on (raw
// block publishes), except skip. Such mounts carry the /dev filesystem's
// number, so they are found by their root (the node's name) and a stat.
func (t mountTable) nodeUsers(devPath string, rdev uint64, skip ...string) []string {
	var out []string
	for i := range t {
		m := &t[i]
		if filepath.Base(m.Root) != filepath.Base(devPath) || slices.Contains(skip, m.MountPoint) {
			continue
		}
		if isBlock(m.MountPoint, rdev) {
			out = append(out, m.MountPoint)
		}
	}
	return out
}

// isBlock reports whether path is (a bind mount of) the block device rdev.
func isBlock(path string, rdev uint64) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev
}

// liveBlockDevice reports whether m's device is a block device still present
// on the node. An unplugged disk leaves sysfs while a mount holds its number.
func liveBlockDevice(m *mount.MountInfo) bool {
	_, err := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d", m.Major, m.Minor))
	return err == nil
}
