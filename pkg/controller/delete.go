package controller

import (
	"time"

	"context"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// DeleteVolume deletes a drive that is not attached anywhere. The API would
// delete a mounted drive; the driver refuses, because the data is in use. A
// drive with snapshots is retired instead (retire.go), so the snapshots
// outlive it; a retired drive is deleted already, as far as CSI knows.
func (c *Service) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	release, err := c.lock(inflight.Volume(id))
	if err != nil {
		return nil, err
	}
	defer release()
	d, err := c.cloud.GetDrive(ctx, id)
	if cloudsigma.IsNotFound(err) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err != nil {
		return nil, cloudError(err, "reading drive")
	}
	if err := c.checkDriveOwner(d, "delete"); err != nil {
		return nil, err
	}
	if isRetired(d) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if d.Attached() {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s is still attached to server(s) %v", id, refUUIDs(d.MountedOn))
	}
	if d.InMotion() {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s is %s", id, d.Status)
	}
	// CloudSigma deletes a drive's snapshots with it.
	if len(d.Snapshots) > 0 {
		if err := c.retire(ctx, d); err != nil {
			return nil, err
		}
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err := c.cloud.DeleteDrive(ctx, id); err != nil && !cloudsigma.IsNotFound(err) {
		return nil, cloudError(err, "deleting drive")
	}
	// Deletion is asynchronous; wait until the drive is gone so a new
	// volume with the same name is not mistaken for this one.
	// The DELETE's answer is the last state seen: the first read comes a
	// poll interval later.
	opts := c.wait
	opts.Seen = time.Now()
	err = cloudsigma.Poll(ctx, opts, func(ctx context.Context) (bool, error) {
		_, err := c.reads.Get(ctx, id) // shared with concurrent waits
		if cloudsigma.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return nil, cloudError(err, "waiting for drive deletion")
	}
	klog.InfoS("DeleteVolume: drive deleted", "drive", id)
	return &csi.DeleteVolumeResponse{}, nil
}
