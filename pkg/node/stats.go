package node

import (
	"context"
	"errors"
	"io/fs"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// NodeGetVolumeStats reports usage at a staged or published path: bytes and
// inodes of a mounted filesystem, the size of a raw block device. The path
// must hold this volume (its device's filesystem, or its device node):
// anything else is NotFound ("a volume corresponding to the specified
// volume_id does not exist on specified volume_path"). A directory with
// nothing mounted is NotFound too: statfs there would describe the node's
// root disk, not the volume.
//
// A volume still published at the path whose device has gone (unplugged
// under its mount) is not NotFound: it exists and is published there, it is
// only inaccessible. Spec v1.13 removed the stats response's
// VolumeCondition (field 2 is reserved) in favour of NodeGetVolumeHealth,
// which reports such a volume INACCESSIBLE; stats, with no usage to give,
// answer FailedPrecondition naming the condition, as for a corrupted mount.
func (s *Service) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	usage, err := s.volumeUsage(ctx, req.GetVolumeId(), req.GetVolumePath())
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: usage}, nil
}

func (s *Service) volumeUsage(ctx context.Context, volID, path string) ([]*csi.VolumeUsage, error) {
	if err := required("volume id", volID, "volume path", path); err != nil {
		return nil, err
	}
	info, err := s.cfg.Stat.Stat(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	_, rdev, err := s.findNow(ctx, volID, 0)
	if err != nil {
		if gone := s.deviceGone(volID, path, info, err); gone != nil {
			return nil, gone
		}
		return nil, err
	}
	switch {
	case info.Block:
		if info.Rdev != rdev {
			return nil, failf(errNotFound, "%s is not volume %s's device", path, volID)
		}
		size, err := device.Size(path)
		if err != nil {
			return nil, err
		}
		return []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: size}}, nil
	case info.Dir:
		mounts, err := s.mounts()
		if err != nil {
			return nil, err
		}
		if m := mounts.at(path); m == nil || !isDevice(m, rdev) {
			return nil, failf(errNotFound, "volume %s is not mounted at %s", volID, path)
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(path, &sfs); err != nil {
			return nil, pathError(path, err)
		}
		bsize := sfs.Bsize
		return []*csi.VolumeUsage{{
			Unit:      csi.VolumeUsage_BYTES,
			Total:     int64(sfs.Blocks) * bsize,
			Available: int64(sfs.Bavail) * bsize,
			Used:      int64(sfs.Blocks-sfs.Bfree) * bsize,
		}, {
			Unit:      csi.VolumeUsage_INODES,
			Total:     int64(sfs.Files),
			Available: int64(sfs.Ffree),
			Used:      int64(sfs.Files - sfs.Ffree),
		}}, nil
	}
	return nil, failf(errNotFound, "%s is neither a mounted directory nor a block device", path)
}

// deviceGone tells a published volume whose device has gone from a volume
// that is not there: the volume's device cannot be found (findErr) while
// path is a mount of a block device (or a device node) that is no longer in
// sysfs. It returns nil when that is not the case.
func (s *Service) deviceGone(volID, path string, info device.Info, findErr error) error {
	if !errors.Is(findErr, device.ErrNotFound) && !errors.Is(findErr, device.ErrIdentity) {
		return nil
	}
	var major, minor uint32
	switch {
	case info.Block:
		major, minor = unix.Major(info.Rdev), unix.Minor(info.Rdev)
	case info.Dir:
		mounts, err := s.mounts()
		if err != nil {
			return nil
		}
		m := mounts.at(path)
		if m == nil {
			return nil
		}
		major, minor = uint32(m.Major), uint32(m.Minor)
	default:
		return nil
	}
	// Major 0: a virtual filesystem (tmpfs, overlay), never a drive.
	if major == 0 || s.liveDevice(major, minor) {
		return nil
	}
	return failf(errPrecondition, "volume %s is published at %s but its device %d:%d is gone from this node "+
		"(unplugged or detached under the mount): no usage to report; NodeGetVolumeHealth reports it INACCESSIBLE (%v)",
		volID, path, major, minor, findErr)
}

// pathError: a missing path is NotFound; a corrupted mount (its device or
// server gone) cannot serve the volume either.
func pathError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failf(errNotFound, "%s does not exist", path)
	case mount.IsCorruptedMnt(err):
		return failf(errPrecondition, "the mount at %s is corrupted: %v", path, err)
	}
	return err
}
