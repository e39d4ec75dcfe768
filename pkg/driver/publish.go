package driver

import (
	"context"
	"slices"
	"strconv"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// ControllerPublishVolume attaches a drive to a server (the node id) as a
// virtio device. The per-server queue serializes and batches the rewrite of
// the server's drives list.
func (c *controller) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	volID, node := req.GetVolumeId(), req.GetNodeId()
	switch {
	case volID == "":
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	case node == "":
		return nil, status.Error(codes.InvalidArgument, "node id is required")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	release, err := c.locks.acquire(volID)
	if err != nil {
		return nil, err
	}
	defer release()

	d, err := c.cloud.GetDrive(ctx, volID)
	if err != nil {
		return nil, cloudError(err, "reading drive")
	}
	if _, err := c.cloud.GetServer(ctx, node); err != nil {
		return nil, cloudError(err, "reading server "+node)
	}
	for _, m := range d.MountedOn {
		if m.UUID != node && !d.AllowMultimount {
			return nil, status.Errorf(codes.FailedPrecondition, "drive %s is attached to server %s; a drive serves one server at a time", volID, m.UUID)
		}
	}
	if slices.Contains(transitional, d.Status) {
		return nil, status.Errorf(codes.Unavailable, "drive %s is %s; attach when it settles", volID, d.Status)
	}
	ch, err := c.queue.Attach(ctx, node, volID)
	if cloudsigma.IsValidation(err) {
		// The API refused the drives list: typically the drive just got
		// attached elsewhere. Not the caller's argument error.
		return nil, status.Errorf(codes.FailedPrecondition, "server %s refused drive %s: %v", node, volID, err)
	}
	if err != nil {
		return nil, cloudError(err, "attaching drive")
	}
	klog.InfoS("ControllerPublishVolume: attached", "drive", volID, "server", node, "devChannel", ch)
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{
		params.PublishDriveUUID:  volID,
		params.PublishDevChannel: ch,
		params.PublishDriveSize:  strconv.FormatInt(int64(d.Size), 10),
	}}, nil
}

// ControllerUnpublishVolume detaches a drive and waits until CloudSigma no
// longer lists it as mounted on the server (detach is asynchronous). A drive
// or server that no longer exists is detached by definition.
func (c *controller) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	volID, node := req.GetVolumeId(), req.GetNodeId()
	if volID == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	release, err := c.locks.acquire(volID)
	if err != nil {
		return nil, err
	}
	defer release()

	servers := []string{node}
	if node == "" {
		// No node given: detach from every server.
		d, err := c.cloud.GetDrive(ctx, volID)
		if cloudsigma.IsNotFound(err) {
			return &csi.ControllerUnpublishVolumeResponse{}, nil
		}
		if err != nil {
			return nil, cloudError(err, "reading drive")
		}
		servers = refUUIDs(d.MountedOn)
	}
	for _, srv := range servers {
		if err := c.queue.Detach(ctx, srv, volID); err != nil && !cloudsigma.IsNotFound(err) {
			return nil, cloudError(err, "detaching drive from server "+srv)
		}
	}
	err = cloudsigma.Poll(ctx, c.wait, func(ctx context.Context) (bool, error) {
		d, err := c.cloud.GetDrive(ctx, volID)
		if cloudsigma.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		for _, srv := range servers {
			if d.IsMountedOn(srv) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, cloudError(err, "waiting for the drive to leave the server")
	}
	klog.InfoS("ControllerUnpublishVolume: detached", "drive", volID, "servers", servers)
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}
