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
