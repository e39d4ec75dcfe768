package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/container-storage-interface/spec/lib/go/csi"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// findNow finds the volume's device with one look, no waiting and no udev
// trigger (device.Finder.FindNow): for calls on a volume that stage already
// found (stats, health, publish, unstage, expand), which report a missing
// device instead of waiting for a hot-plug like stage does, and which a CO
// calls often enough that they must not make udev re-run its rules.
func (s *Service) findNow(ctx context.Context, volID string, wantSize int64) (string, uint64, error) {
	dev, err := s.cfg.Finder.FindNow(ctx, volID, wantSize)
	if err != nil {
		return "", 0, err
	}
	rdev, err := s.number(dev)
	if err != nil {
		return "", 0, err
	}
	return dev, rdev, nil
}

// NodeGetVolumeHealth (the spec v1.13 successor of VolumeCondition) checks
// what the node can see: the device is present and proven, and the given
// staging and publish paths hold its mounts. An empty list means healthy.
func (s *Service) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	volID := req.GetVolumeId()
	if err := required("volume id", volID); err != nil {
		return nil, toStatus(err)
	}
	h := &healthReport{}
	_, rdev, findErr := s.findNow(ctx, volID, 0)
	if findErr != nil {
		reason := "DeviceNotFound"
		if errors.Is(findErr, device.ErrIdentity) || errors.Is(findErr, device.ErrAmbiguous) || errors.Is(findErr, device.ErrSize) {
			reason = "DeviceNotIdentified"
		}
		h.add(reason, findErr.Error())
	}

	mounts, err := s.mounts()
	if err != nil {
		return nil, toStatus(err)
	}
	seen := false
	// A staging path without a mount is normal for raw block volumes.
	if p := req.GetStagingTargetPath(); p != "" {
		seen = s.checkPath(h, mounts, p, false, findErr == nil, rdev) || seen
	}
	if p := req.GetVolumePublishPath(); p != "" {
		seen = s.checkPath(h, mounts, p, true, findErr == nil, rdev) || seen
	}
	if findErr != nil && !seen {
		return nil, toStatus(failf(errNotFound, "volume %s has no device and no staged or published path on this node: %v", volID, findErr))
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{VolumeId: volID, HealthStatuses: h.entries}}, nil
}

type healthReport struct {
	entries []*csi.VolumeHealth_VolumeHealthEntry
}

// add records an INACCESSIBLE condition once per reason.
func (h *healthReport) add(reason, msg string) {
	for _, e := range h.entries {
		if e.Reason == reason {
			e.Message += "; " + msg
			return
		}
	}
	h.entries = append(h.entries, &csi.VolumeHealth_VolumeHealthEntry{
		Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: reason, Message: msg,
	})
}

// checkPath inspects one path and reports whether it exists. mustMount: a
// publish path always holds a mount; haveDev: rdev is the proven device.
func (s *Service) checkPath(h *healthReport, mounts mountTable, path string, mustMount, haveDev bool, rdev uint64) bool {
	info, err := s.cfg.Stat.Stat(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if mustMount {
				h.add("NotPublished", fmt.Sprintf("%s does not exist", path))
			}
			return false
		case mount.IsCorruptedMnt(err):
			h.add("CorruptedMount", err.Error())
			return true
		}
		h.add("PathError", err.Error())
		return true
	}
	m := mounts.at(path)
	switch {
	case m == nil:
		if mustMount {
			h.add("NotPublished", fmt.Sprintf("nothing is mounted at %s", path))
		}
	case !haveDev:
		// Already reported: the device behind the mount cannot be proven.
	case info.Block && info.Rdev != rdev, info.Dir && !isDevice(m, rdev):
		h.add("WrongDevice", fmt.Sprintf("%s holds %s (%d:%d), not the volume's device", path, m.Source, m.Major, m.Minor))
	}
	return true
}
