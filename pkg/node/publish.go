package node

import (
	"context"
	"os"
	"path/filepath"

	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
)

// NodePublishVolume bind-mounts the staged filesystem, or the raw device
// node, at the target path.
//
// Read-only is a "ro" bind mount. For raw block the kernel does not enforce
// "ro" on a device node (verified: writes through a ro bind of /dev/loopN
// succeed); the kubelet enforces it by giving the container the device with
// read-only cgroup permissions.
//
// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) allows one target: a second
// one is FailedPrecondition. SINGLE_NODE_WRITER is not limited, because
// COs without SINGLE_NODE_MULTI_WRITER support use it for ReadWriteOnce,
// which lets several pods on one node share the volume.
func (s *Service) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if err := s.publish(ctx, req); err != nil {
		return nil, toStatus(err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (s *Service) publish(ctx context.Context, req *csi.NodePublishVolumeRequest) error {
	volID, target, vc := req.GetVolumeId(), req.GetTargetPath(), req.GetVolumeCapability()
	if err := required("volume id", volID, "target path", target); err != nil {
		return err
	}
	if err := checkCapability(vc, errPrecondition); err != nil {
		return err
	}
	if req.GetStagingTargetPath() == "" {
		return failf(errPrecondition, "staging target path missing: the volume must be staged first")
	}
	// An explicit fs_type must be the staged filesystem's (none: any).
	fsType := ""
	if vc.GetMount().GetFsType() != "" {
		var err error
		if fsType, err = fsTypeOf(vc, nil); err != nil {
			return err
		}
	}
	wantSize, err := driveFromPublishContext(volID, req.GetPublishContext())
	if err != nil {
		return err
	}
	unlock, err := s.locks.Acquire(inflight.Volume(volID))
	if err != nil {
		return err
	}
	defer unlock()

	// A volume that is not on this node is NotFound. Publish follows a
	// stage, which waited for the device: no need to wait again.
	dev, rdev, err := s.findNow(ctx, volID, wantSize)
	if err != nil {
		return err
	}
	ro := req.GetReadonly() || readOnlyMode(vc)
	single := vc.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	if vc.GetBlock() != nil {
		return s.publishBlock(req, dev, rdev, ro, single)
	}
	return s.publishMount(req, rdev, fsType, ro, single)
}

// publishMount bind-mounts the staging mount of the volume's device; an
// explicit fs_type must be the staged one.
func (s *Service) publishMount(req *csi.NodePublishVolumeRequest, rdev uint64, fsType string, ro, single bool) error {
	staging, target := filepath.Clean(req.GetStagingTargetPath()), filepath.Clean(req.GetTargetPath())
	mounts, err := s.mounts()
	if err != nil {
		return err
	}
	sm := mounts.at(staging)
	if sm == nil || !isDevice(sm, rdev) {
		return failf(errPrecondition, "volume %s is not staged at %s", req.GetVolumeId(), staging)
	}
	fsDiffers := fsType != "" && fsType != sm.FsType
	if tm := mounts.at(target); tm != nil {
		if !isDevice(tm, rdev) || tm.Root != sm.Root {
			return failf(errConflict, "%s already holds another mount (%s)", target, tm.Source)
		}
		if fsDiffers {
			return failf(errConflict, "%s is published as %s, %s requested", target, sm.FsType, fsType)
		}
		return sameReadOnly(tm, ro)
	}
	if fsDiffers {
		return failf(errPrecondition, "volume %s is staged as %s, %s requested", req.GetVolumeId(), sm.FsType, fsType)
	}
	if single {
		if others := mounts.fsUsers(rdev, staging, target); len(others) > 0 {
			return failf(errPrecondition, "single-writer volume %s is already published at %v", req.GetVolumeId(), others)
		}
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	opts := append(bindOptions(ro), req.GetVolumeCapability().GetMount().GetMountFlags()...)
	if err := s.cfg.Mounter.Mount(staging, target, "", opts); err != nil {
		return err
	}
	klog.V(2).InfoS("Published volume", "volume", req.GetVolumeId(), "target", target, "readOnly", ro)
	return nil
}

// publishBlock bind-mounts the device node on a file at the target.
func (s *Service) publishBlock(req *csi.NodePublishVolumeRequest, dev string, rdev uint64, ro, single bool) error {
	volID, target := req.GetVolumeId(), filepath.Clean(req.GetTargetPath())
	mounts, err := s.mounts()
	if err != nil {
		return err
	}
	if tm := mounts.at(target); tm != nil {
		if !s.isBlock(target, rdev) {
			return failf(errConflict, "%s already holds another mount (%s)", target, tm.Source)
		}
		return sameReadOnly(tm, ro)
	}
	// Raw access under a mounted filesystem would corrupt it.
	if sm := mounts.at(req.GetStagingTargetPath()); sm != nil && isDevice(sm, rdev) {
		return failf(errPrecondition, "volume %s is staged as a %s filesystem at %s, not as a raw block volume", volID, sm.FsType, sm.MountPoint)
	}
	if single {
		if others := mounts.nodeUsers(s.isBlock, dev, rdev, target); len(others) > 0 {
			return failf(errPrecondition, "single-writer volume %s is already published at %v", volID, others)
		}
	}
	if err := makeFile(target); err != nil {
		return err
	}
	if err := s.cfg.Mounter.Mount(dev, target, "", bindOptions(ro)); err != nil {
		return err
	}
	klog.V(2).InfoS("Published raw block volume", "volume", volID, "device", dev, "target", target, "readOnly", ro)
	return nil
}

func bindOptions(ro bool) []string {
	if ro {
		return []string{"bind", "ro"}
	}
	return []string{"bind"}
}

// sameReadOnly: an existing publish is only "the same" with the same mode.
func sameReadOnly(m *mount.MountInfo, ro bool) error {
	if readOnly(m) != ro {
		return failf(errConflict, "%s is published with read-only=%t, read-only=%t requested", m.MountPoint, readOnly(m), ro)
	}
	return nil
}

// makeFile creates the file a device node is bind-mounted on; an empty
// directory left there (by an earlier filesystem publish) is replaced.
func makeFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o660)
	if err != nil {
		return err
	}
	return f.Close()
}

// NodeUnpublishVolume unmounts the target and removes the directory or file
// there. Already gone, never mounted or corrupted all end in success.
func (s *Service) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	volID, target := req.GetVolumeId(), req.GetTargetPath()
	if err := required("volume id", volID, "target path", target); err != nil {
		return nil, toStatus(err)
	}
	unlock, err := s.locks.Acquire(inflight.Volume(volID))
	if err != nil {
		return nil, toStatus(err)
	}
	defer unlock()
	if err := mount.CleanupMountPoint(target, s.cfg.Mounter, true); err != nil {
		return nil, toStatus(err)
	}
	klog.V(2).InfoS("Unpublished volume", "volume", volID, "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
