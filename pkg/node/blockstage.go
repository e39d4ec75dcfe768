package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Raw block volumes need no staging: publish bind-mounts the device node.
// The staging directory still records that the volume is staged as raw
// block, and how, so that a later stage with an incompatible capability is
// refused with ALREADY_EXISTS as for filesystems, instead of formatting a
// device a pod writes raw data to.

const blockMarker = ".cloudsigma-csi-raw-block"

func blockMode(ro bool) string {
	if ro {
		return "read-only"
	}
	return "read-write"
}

// stageBlock stages a raw block volume: nothing may be mounted at the
// staging path, and an earlier raw block stage must have the same mode.
func (s *Service) stageBlock(staging string, rdev uint64, ro bool) error {
	mounts, err := s.mounts()
	if err != nil {
		return err
	}
	if m := mounts.at(staging); m != nil {
		if isDevice(m, rdev) {
			return failf(errConflict, "%s is staged as a %s filesystem, raw block requested", staging, m.FsType)
		}
		return failf(errConflict, "%s already holds device %d:%d (%s), not this volume's", staging, m.Major, m.Minor, m.Source)
	}
	want := blockMode(ro)
	if mode, ok := blockStaged(staging); ok {
		if mode != want {
			return failf(errConflict, "%s is staged as a %s raw block volume, %s requested", staging, mode, want)
		}
		return nil
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(staging, blockMarker), []byte(want+"\n"), 0o640)
}

// blockStaged reports the mode of a raw block stage at staging (which must
// not be a mount point: the marker would be the volume's own file).
func blockStaged(staging string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(staging, blockMarker))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// unstageBlock removes the raw block marker from an unmounted staging path.
func unstageBlock(staging string) error {
	err := os.Remove(filepath.Join(staging, blockMarker))
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	return err
}
