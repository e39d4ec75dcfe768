package node

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
)

// NodeExpandVolume grows the filesystem online to the size of its (already
// grown) device: resize2fs for ext3/4, xfs_growfs for xfs. Raw block needs
// nothing; the new size is reported either way.
func (s *Service) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	size, err := s.expand(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}

func (s *Service) expand(ctx context.Context, req *csi.NodeExpandVolumeRequest) (int64, error) {
	volID, path := req.GetVolumeId(), req.GetVolumePath()
	if err := required("volume id", volID, "volume path", path); err != nil {
		return 0, err
	}
	if vc := req.GetVolumeCapability(); vc != nil {
		// The error table: "Exceeds capabilities | 3 INVALID_ARGUMENT".
		if err := checkCapability(vc, errInvalid); err != nil {
			return 0, err
		}
	}
	if err := checkCapacityRange(req.GetCapacityRange()); err != nil {
		return 0, err
	}
	info, err := s.cfg.Stat.Stat(path)
	if err != nil {
		return 0, pathError(path, err)
	}
	unlock, err := s.locks.Acquire(inflight.Volume(volID))
	if err != nil {
		return 0, err
	}
	defer unlock()

	// Expansion follows a stage, which waited for the device.
	dev, rdev, err := s.findNow(ctx, volID, 0)
	if err != nil {
		return 0, err
	}
	size, err := device.Size(dev)
	if err != nil {
		return 0, err
	}
	// A device smaller than required has not grown yet (the controller
	// resizes the drive): retryable. One larger than the limit cannot be
	// shrunk: the range is out of reach.
	if want := req.GetCapacityRange().GetRequiredBytes(); want > size {
		return 0, failf(errUnavailable, "device %s holds %d bytes, %d requested: the drive has not grown (yet)", dev, size, want)
	}
	if limit := req.GetCapacityRange().GetLimitBytes(); limit > 0 && size > limit {
		return 0, failf(errOutOfRange, "volume %s already holds %d bytes, more than the limit of %d bytes", volID, size, limit)
	}
	// A path that does not hold this volume: "Volume does not exist" there.
	if info.Block || req.GetVolumeCapability().GetBlock() != nil {
		if !s.isBlock(path, rdev) {
			return 0, failf(errNotFound, "%s is not volume %s's device", path, volID)
		}
		return size, nil
	}

	mounts, err := s.mounts()
	if err != nil {
		return 0, err
	}
	m := mounts.at(path)
	switch {
	case m == nil:
		return 0, failf(errNotFound, "volume %s is not mounted at %s", volID, path)
	case !isDevice(m, rdev):
		return 0, failf(errNotFound, "%s holds device %d:%d, not volume %s's %s", path, m.Major, m.Minor, volID, dev)
	}
	// xfs_growfs needs a writable mount of the filesystem: a read-only
	// publish is grown through its read-write staging mount.
	growAt := path
	if readOnly(m) {
		sm := mounts.at(req.GetStagingTargetPath())
		if sm == nil || !isDevice(sm, rdev) || readOnly(sm) {
			return 0, failf(errPrecondition, "%s is mounted read-only and no writable staging mount was given", path)
		}
		growAt = sm.MountPoint
	}
	if err := s.grow(dev, growAt); err != nil {
		return 0, err
	}
	klog.InfoS("Expanded volume", "volume", volID, "device", dev, "path", growAt, "bytes", size)
	return size, nil
}
