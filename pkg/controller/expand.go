package controller

import (
	"context"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// ControllerExpandVolume grows a drive with the resize action. CloudSigma
// refuses to resize a drive mounted on a running server, so expansion is
// offline: FailedPrecondition tells the resizer to try again once the volume
// is detached.
func (c *Service) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	r := req.GetCapacityRange()
	if r.GetRequiredBytes() == 0 && r.GetLimitBytes() == 0 {
		// "At least one of these fields MUST be specified."
		return nil, status.Error(codes.InvalidArgument, "capacity range is required: set required_bytes or limit_bytes")
	}
	if err := checkRange(r); err != nil {
		return nil, err
	}
	if vc := req.GetVolumeCapability(); vc != nil {
		if err := checkCapabilities([]*csi.VolumeCapability{vc}); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	release, err := c.lock(inflight.Volume(id))
	if err != nil {
		return nil, err
	}
	defer release()

	d, err := c.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := c.checkDriveOwner(d, "resize"); err != nil {
		return nil, err
	}
	if d.Status == cloudsigma.StatusResizing {
		if d, err = c.waitReady(ctx, id); err != nil {
			return nil, err
		}
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	want, err := pickSize(req.GetCapacityRange(), caps.Drives[d.StorageType])
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	if limit := r.GetLimitBytes(); limit > 0 && int64(d.Size) > limit {
		return nil, status.Errorf(codes.OutOfRange, "drive %s is already %d bytes, more than the limit of %d bytes; drives cannot shrink", id, int64(d.Size), limit)
	}
	nodeExpansion := req.GetVolumeCapability().GetBlock() == nil
	if r.GetRequiredBytes() == 0 || int64(d.Size) >= want {
		// Only a limit, which the drive meets, or already large enough.
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: int64(d.Size), NodeExpansionRequired: nodeExpansion}, nil
	}
	if srv, err := c.runningServer(ctx, d); err != nil {
		return nil, err
	} else if srv != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s is attached to running server %s; CloudSigma resizes only detached drives", id, srv)
	}
	if _, err := c.cloud.ResizeDrive(ctx, d, want); err != nil {
		return nil, resizeError(err, id)
	}
	if d, err = c.waitReady(ctx, id); err != nil {
		return nil, err
	}
	klog.InfoS("ControllerExpandVolume: resized", "drive", id, "size", int64(d.Size))
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: int64(d.Size), NodeExpansionRequired: nodeExpansion}, nil
}

// runningServer returns a running server the drive is mounted on, if any.
func (c *Service) runningServer(ctx context.Context, d *cloudsigma.Drive) (string, error) {
	for _, m := range d.MountedOn {
		srv, err := c.cloud.GetServer(ctx, m.UUID)
		if cloudsigma.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", cloudError(err, "reading server "+m.UUID)
		}
		if srv.Status != cloudsigma.StatusStopped {
			return m.UUID, nil
		}
	}
	return "", nil
}
