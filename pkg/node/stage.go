package node

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"

	"github.com/cloudsigma-csi/driver/pkg/inflight"
)

// blkid's answer (via mount-utils) for a device holding a partition table.
const partitionedFormat = "unknown data, probably partitions"

// NodeStageVolume finds the drive's device and, for filesystem volumes,
// mounts it at the staging path, formatting it only when it holds nothing.
// Raw block volumes need no mount: publish bind-mounts the device node, and
// the staging path only records the raw block stage (blockstage.go).
func (s *Service) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	if err := s.stage(ctx, req); err != nil {
		return nil, toStatus(err)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (s *Service) stage(ctx context.Context, req *csi.NodeStageVolumeRequest) error {
	volID, staging, vc := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	if err := required("volume id", volID, "staging target path", staging); err != nil {
		return err
	}
	if err := checkCapability(vc, errPrecondition); err != nil {
		return err
	}
	wantSize, err := driveFromPublishContext(volID, req.GetPublishContext())
	if err != nil {
		return err
	}
	var fsType string
	var fmtOpts []string
	if vc.GetMount() != nil {
		if fsType, err = fsTypeOf(vc, req.GetVolumeContext()); err != nil {
			return err
		}
		if fmtOpts, err = formatOptions(fsType, req.GetVolumeContext()); err != nil {
			return err
		}
	}
	unlock, err := s.locks.Acquire(inflight.Volume(volID))
	if err != nil {
		return err
	}
	defer unlock()

	dev, err := s.find(ctx, volID, wantSize, req.GetPublishContext())
	if err != nil {
		return err
	}
	rdev, err := s.number(dev)
	if err != nil {
		return err
	}
	ro := readOnlyMode(vc)
	if vc.GetBlock() != nil {
		if err := s.stageBlock(staging, rdev, ro); err != nil {
			return err
		}
		klog.V(2).InfoS("Staged raw block volume", "volume", volID, "device", dev)
		return nil
	}

	done, err := s.alreadyStaged(staging, rdev, fsType, ro)
	if err != nil {
		return err
	}
	if done {
		if ro {
			return nil
		}
		return s.grow(dev, staging)
	}
	existing, err := s.checkFormat(dev, fsType)
	if err != nil {
		return err
	}
	if !ro {
		if err := s.growUnmounted(dev, existing); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return err
	}
	opts := mountOptions(vc, fsType, ro)
	if existing == "" && !ro {
		if err := s.formatAndMountBlank(dev, staging, fsType, opts, fmtOpts); err != nil {
			return formatError(err, fsType, fmtOpts)
		}
		klog.InfoS("Staged volume", "volume", volID, "device", dev, "fsType", fsType, "path", staging, "formatted", true)
		s.note(volID, dev)
		return nil
	}
	if err := s.cfg.Mounter.FormatAndMountSensitiveWithFormatOptions(dev, staging, fsType, opts, nil, fmtOpts); err != nil {
		return formatError(err, fsType, fmtOpts)
	}
	klog.InfoS("Staged volume", "volume", volID, "device", dev, "fsType", fsType, "path", staging)
	s.note(volID, dev)
	if ro {
		return nil
	}
	// A restore or clone into a bigger drive carries a smaller filesystem.
	if err := s.grow(dev, staging); err != nil {
		// Leave no mount behind a failed stage: the CO may never unstage it.
		if uerr := s.cfg.Mounter.Unmount(staging); uerr != nil {
			klog.ErrorS(uerr, "Unmounting after a failed grow", "path", staging)
		}
		return err
	}
	return nil
}

// alreadyStaged makes stage idempotent: the same device mounted the same
// way is done; anything else on the staging path is a conflict. A corrupted
// mount (its device gone) is cleared so the stage can proceed.
func (s *Service) alreadyStaged(staging string, rdev uint64, fsType string, ro bool) (bool, error) {
	if _, err := s.cfg.Stat.Stat(staging); mount.IsCorruptedMnt(err) {
		klog.InfoS("Unmounting corrupted staging mount", "path", staging, "err", err)
		if err := s.cfg.Mounter.Unmount(staging); err != nil {
			return false, err
		}
	}
	mounts, err := s.mounts()
	if err != nil {
		return false, err
	}
	m := mounts.at(staging)
	switch {
	case m == nil:
		if mode, ok := blockStaged(staging); ok {
			return false, failf(errConflict, "%s is staged as a raw block volume (%s), a filesystem requested", staging, mode)
		}
		return false, nil
	case !isDevice(m, rdev):
		return false, failf(errConflict, "%s already holds device %d:%d (%s), not this volume's", staging, m.Major, m.Minor, m.Source)
	case m.FsType != fsType:
		return false, failf(errConflict, "%s is staged as %s, %s requested", staging, m.FsType, fsType)
	case readOnly(m) != ro:
		return false, failf(errConflict, "%s is staged with read-only=%t, read-only=%t requested", staging, readOnly(m), ro)
	}
	return true, nil
}

// checkFormat refuses devices that hold a partition table or a different
// filesystem (or any other known signature): data is never reformatted.
// A blank device passes and will be formatted: one that reads as zeros
// wherever blkid looks (device.Blank) without running blkid.
// It returns the filesystem found ("" for a blank device).
func (s *Service) checkFormat(dev, fsType string) (string, error) {
	if blank, err := s.cfg.Blank(dev); blank {
		return "", nil
	} else if err != nil {
		klog.V(4).InfoS("Could not read the device for zeros, asking blkid", "device", dev, "err", err)
	}
	existing, err := s.cfg.Mounter.GetDiskFormat(dev)
	if err != nil {
		return "", err
	}
	switch {
	case existing == "" || existing == fsType:
		return existing, nil
	case existing == partitionedFormat:
		return "", failf(errPrecondition, "%s holds a partition table; refusing to format or mount it", dev)
	default:
		return "", failf(errPrecondition, "%s holds %s, %s requested; refusing to reformat", dev, existing, fsType)
	}
}

// mkfsPackages names the package that ships each filesystem's mkfs (the
// same name on Debian, Ubuntu, Fedora, Alpine and the driver's image).
var mkfsPackages = map[string]string{"ext2": "e2fsprogs", "ext3": "e2fsprogs", "ext4": "e2fsprogs", "xfs": "xfsprogs"}

// formatError says what to do about a failed mkfs; other errors of
// FormatAndMount pass through. mount-utils reports a format failure as a
// MountError of type FormatFailed whose text carries mkfs's error and output.
//
//   - mkfs not installed (its exec error is "executable file not found"):
//     FailedPrecondition naming the package to install. The request is
//     valid and the driver is not broken, so not Internal; the node lacks
//     a package, which an operator installs (the driver's image has both).
//   - mkfs failed with formatOptions from the StorageClass: InvalidArgument
//     naming them. The allow-list (pkg/params) admits only known options
//     with well-formed values, but mkfs still refuses combinations and
//     values it cannot use (a block size the kernel does not support, a
//     feature this mkfs does not know); mkfs's own output is quoted, so the
//     rare failure that is not about the options still shows its cause.
//   - any other mkfs failure stays Internal.
func formatError(err error, fsType string, fmtOpts []string) error {
	var me mount.MountError
	if !errors.As(err, &me) || me.Type != mount.FormatFailed {
		return err
	}
	if strings.Contains(me.Message, utilexec.ErrExecutableNotFound.Error()) {
		pkg := mkfsPackages[fsType]
		if pkg == "" {
			pkg = "the package that provides it"
		}
		return failf(errPrecondition, "mkfs.%s is not installed on this node: install %s on the node (or in the driver's image); %v", fsType, pkg, err)
	}
	if len(fmtOpts) > 0 {
		return failf(errInvalid, "mkfs.%s refused the formatOptions %q of the StorageClass: fix or remove them; %v", fsType, strings.Join(fmtOpts, " "), err)
	}
	return err
}

// mountOptions are the capability's flags plus what the mode and the
// filesystem need.
func mountOptions(vc *csi.VolumeCapability, fsType string, ro bool) []string {
	opts := append([]string(nil), vc.GetMount().GetMountFlags()...)
	if ro {
		opts = append(opts, "ro")
	}
	// Clones and snapshots restores share the XFS UUID of their source; two
	// of them on one node would otherwise refuse to mount.
	if fsType == "xfs" && !strings.Contains(strings.Join(opts, ","), "nouuid") {
		opts = append(opts, "nouuid")
	}
	return opts
}

// NodeUnstageVolume unmounts the staging path and removes it. Not mounted,
// missing or corrupted (device vanished) all end the same way: success.
func (s *Service) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	volID, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := required("volume id", volID, "staging target path", staging); err != nil {
		return nil, toStatus(err)
	}
	unlock, err := s.locks.Acquire(inflight.Volume(volID))
	if err != nil {
		return nil, toStatus(err)
	}
	defer unlock()
	mounts, err := s.mounts()
	if err != nil {
		return nil, toStatus(err)
	}
	if m := mounts.at(staging); m == nil {
		if err := unstageBlock(staging); err != nil {
			return nil, toStatus(err)
		}
	} else if _, rdev, err := s.findNow(ctx, volID, 0); err == nil && !isDevice(m, rdev) && s.liveBlockDevice(m) {
		// "If the volume corresponding to the volume_id is not staged to
		// the staging_target_path, the Plugin MUST reply 0 OK": and it
		// must not unmount another volume that is staged there. A mount
		// whose device is gone (this volume's, before a re-attach gave it
		// a new number) is still cleaned up.
		klog.InfoS("Not unstaging: the staging path holds another device", "volume", volID, "path", staging, "source", m.Source)
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	if err := mount.CleanupMountPoint(staging, s.cfg.Mounter, true); err != nil {
		return nil, toStatus(err)
	}
	klog.V(2).InfoS("Unstaged volume", "volume", volID, "path", staging)
	return &csi.NodeUnstageVolumeResponse{}, nil
}
