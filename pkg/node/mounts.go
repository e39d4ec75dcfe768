package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// The mount table is the node's only state: it says what is staged or
// published where, and from which device, even after a restart.

// MountTable lists the mounts the node sees. Config.Mounts takes one so
// that tests can describe a node's mounts without root.
type MountTable interface {
	List() ([]mount.MountInfo, error)
}

// MountInfoFile is the MountTable parsed from a mountinfo(5) file.
type MountInfoFile string

// DefaultMountInfo is this process's mount table.
const DefaultMountInfo MountInfoFile = "/proc/self/mountinfo"

// List implements MountTable.
func (f MountInfoFile) List() ([]mount.MountInfo, error) {
	return mount.ParseMountInfo(string(f))
}

// Stater stats a path, following links, as device.Probe does; errors name
// the path (*fs.PathError). Config.Stat takes one so that tests can fake
// device nodes, which only root can create.
type Stater interface {
	Stat(path string) (device.Info, error)
}

// StatFunc adapts a function such as device.Probe to a Stater.
type StatFunc func(path string) (device.Info, error)

// Stat implements Stater.
func (f StatFunc) Stat(path string) (device.Info, error) { return f(path) }

type mountTable []mount.MountInfo

func (s *Service) mounts() (mountTable, error) {
	return s.cfg.Mounts.List()
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
// number, so they are found by their root (the node's name) and isBlock.
func (t mountTable) nodeUsers(isBlock func(string, uint64) bool, devPath string, rdev uint64, skip ...string) []string {
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

// number is the device number of the block device dev.
func (s *Service) number(dev string) (uint64, error) {
	return device.NumberOf(s.cfg.Stat.Stat, dev)
}

// isBlock reports whether path is (a bind mount of) the block device rdev.
func (s *Service) isBlock(path string, rdev uint64) bool {
	info, err := s.cfg.Stat.Stat(path)
	return err == nil && info.IsBlock(rdev)
}

// liveBlockDevice reports whether m's device is a block device still present
// on the node. An unplugged disk leaves sysfs while a mount holds its number.
func (s *Service) liveBlockDevice(m *mount.MountInfo) bool {
	return s.liveDevice(uint32(m.Major), uint32(m.Minor))
}

// liveDevice reports whether block device major:minor is present in sysfs.
func (s *Service) liveDevice(major, minor uint32) bool {
	_, err := os.Stat(filepath.Join(s.cfg.SysDir, "dev", "block", fmt.Sprintf("%d:%d", major, minor)))
	return err == nil
}
