package controller

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// ControllerPublishVolume attaches a drive to a server (the node id) as a
// virtio device. The per-server queue serializes and batches the rewrite of
// the server's drives list. In steady state it makes three API calls: read
// the drive, read the server, write the server (which carries the publish
// record and whose answer confirms the attach).
func (c *Service) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
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
	release, err := c.lock(inflight.Volume(volID))
	if err != nil {
		return nil, err
	}
	defer release()

	// Call 1 of 3: the drive, for its owner, multimount flag, holders,
	// status and size (the publish context's).
	d, err := c.volume(ctx, volID)
	if err != nil {
		return nil, err
	}
	if err := c.checkDriveOwner(d, "attach"); err != nil {
		return nil, err
	}
	want := publishRecord(node, req.GetVolumeCapability(), req.GetReadonly())
	if req.GetReadonly() && d.IsMountedOn(node) {
		// Every publish this driver made is writable: a readonly one at the
		// same node is incompatible with it.
		return nil, incompatiblePublish(volID, node, publishRecord(node, req.GetVolumeCapability(), false), want)
	}
	if req.GetReadonly() {
		// Without PUBLISH_READONLY the CO "MUST set this field to false";
		// CloudSigma cannot attach a drive read-only, and attaching it
		// writable instead would break the request's promise.
		return nil, status.Error(codes.InvalidArgument, "readonly publishing is not supported (no PUBLISH_READONLY capability); mount read-only on the node instead")
	}
	// Several servers only for a multi-node capability on a drive that
	// allows it; a single-node capability keeps its promise either way.
	shared := multiNode(req.GetVolumeCapability())
	if shared && !d.AllowMultimount {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s does not allow multimount: it was not created for %s", volID, req.GetVolumeCapability().GetAccessMode().GetMode())
	}
	if !shared {
		if err := c.takeFromStopped(ctx, d, node); err != nil {
			return nil, err
		}
	}
	// Already attached here: the queue answers with its channel. Otherwise
	// wait for a drive in motion (being created, cloned or resized).
	if !d.IsMountedOn(node) && d.InMotion() {
		return nil, status.Errorf(codes.Unavailable, "drive %s is %s; attach when it settles", volID, d.Status)
	}
	evidence, err := c.identityEvidence(ctx, node, d)
	if err != nil {
		return nil, err
	}
	// Calls 2 and 3: the queue reads the server and writes it once for its
	// whole batch, the publish record in the server's meta in that same
	// write; a missing server is its NotFound. The answer lists the drive
	// at its channel or the attach is not confirmed.
	a, err := c.queue.Attach(ctx, node, volID, c.serverRecord(want))
	if err != nil {
		c.leaveWindow(node, volID)
		return nil, attachError(err, node, volID)
	}
	got := recordOnServer(a.Record)
	if got == "" && d.IsMountedOn(node) && strings.HasPrefix(d.Meta[MetaPublished], node+"/") {
		got = d.Meta[MetaPublished] // published by a driver that kept the record on the drive
	}
	if got != "" && got != want {
		c.leaveWindow(node, volID)
		return nil, incompatiblePublish(volID, node, got, want)
	}
	klog.InfoS("ControllerPublishVolume: attached", "drive", volID, "server", node, "devChannel", a.Channel)
	pc := map[string]string{
		params.PublishDriveUUID:  volID,
		params.PublishDevChannel: a.Channel,
		params.PublishDriveSize:  strconv.FormatInt(int64(d.Size), 10),
	}
	maps.Copy(pc, evidence)
	return &csi.ControllerPublishVolumeResponse{PublishContext: pc}, nil
}

// takeFromStopped frees a single-node drive held by servers other than
// node, the failover after a node died: a stopped or deleted server lets go
// of it (the queue's read-modify-write keeps every other field of that
// server), a server in any other state keeps it, because its guest may still
// be writing. It never detaches from a running server on behalf of another.
func (c *Service) takeFromStopped(ctx context.Context, d *cloudsigma.Drive, node string) error {
	var stopped []string
	for _, m := range d.MountedOn {
		if m.UUID == node {
			continue
		}
		srv, err := c.cloud.GetServer(ctx, m.UUID)
		switch {
		case cloudsigma.IsNotFound(err):
			continue // gone: nothing holds the drive there any more
		case err != nil:
			return cloudError(err, "reading server "+m.UUID+", which holds drive "+d.UUID)
		case srv.Status != cloudsigma.StatusStopped:
			return status.Errorf(codes.FailedPrecondition,
				"drive %s is attached to server %s, which is %s; a drive serves one server at a time. If that node is gone, stop server %s (CloudSigma console or API) and the attach moves the drive; otherwise delete the pod that uses it there first",
				d.UUID, m.UUID, srv.Status, m.UUID)
		}
		stopped = append(stopped, m.UUID)
	}
	for _, srv := range stopped {
		if err := c.queue.Detach(ctx, srv, d.UUID, nil); err != nil && !cloudsigma.IsNotFound(err) {
			return cloudError(err, "detaching drive "+d.UUID+" from stopped server "+srv)
		}
		klog.InfoS("ControllerPublishVolume: detached from a stopped server", "drive", d.UUID, "from", srv, "to", node)
	}
	if len(stopped) == 0 {
		return nil
	}
	return c.waitDetached(ctx, d.UUID, stopped)
}

// waitDetached waits until the drive no longer reports mounted_on any of
// servers (CloudSigma detaches asynchronously). A deleted drive is detached.
func (c *Service) waitDetached(ctx context.Context, volID string, servers []string) error {
	err := cloudsigma.Poll(ctx, c.wait, func(ctx context.Context) (bool, error) {
		d, err := c.reads.Get(ctx, volID) // shared with concurrent waits
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
	return cloudError(err, "waiting for drive "+volID+" to leave server(s) "+strings.Join(servers, ", "))
}

// ControllerUnpublishVolume detaches a drive and waits until CloudSigma no
// longer lists it as mounted on the server (detach is asynchronous). A drive
// or server that no longer exists is detached by definition. In steady state
// it reads and writes the server, then reads the drive once per poll.
func (c *Service) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	volID, node := req.GetVolumeId(), req.GetNodeId()
	if volID == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	release, err := c.lock(inflight.Volume(volID))
	if err != nil {
		return nil, err
	}
	defer release()

	// Another cluster's drive is never detached, from any server, by this
	// cluster. This cluster's publish record on the server proves the drive
	// was attached there by this cluster, so the server's read (the queue's)
	// stands in for the drive's; without that record the drive is read.
	if node != "" {
		err := c.queue.Detach(ctx, node, volID, c.publishedHere)
		switch {
		case errors.Is(err, attach.ErrNotRecorded):
		case err != nil && !cloudsigma.IsNotFound(err):
			return nil, cloudError(err, "detaching drive from server "+node)
		default:
			return c.unpublished(ctx, volID, []string{node})
		}
	}
	d, err := c.volume(ctx, volID)
	switch {
	case status.Code(err) == codes.NotFound && node == "":
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	case status.Code(err) == codes.NotFound:
		// A deleted drive may still be listed on the server: detach it.
	case err != nil:
		return nil, err
	default:
		if err := c.checkDriveOwner(d, "detach"); err != nil {
			return nil, err
		}
	}
	servers := []string{node}
	if node == "" {
		// No node given: detach from every server.
		servers = refUUIDs(d.MountedOn)
	}
	for _, srv := range servers {
		if err := c.queue.Detach(ctx, srv, volID, nil); err != nil && !cloudsigma.IsNotFound(err) {
			return nil, cloudError(err, "detaching drive from server "+srv)
		}
	}
	return c.unpublished(ctx, volID, servers)
}

// unpublished waits for the asynchronous unplug, one drive read per poll.
func (c *Service) unpublished(ctx context.Context, volID string, servers []string) (*csi.ControllerUnpublishVolumeResponse, error) {
	for _, srv := range servers {
		c.leaveWindow(srv, volID)
	}
	if err := c.waitDetached(ctx, volID, servers); err != nil {
		return nil, err
	}
	klog.InfoS("ControllerUnpublishVolume: detached", "drive", volID, "servers", servers)
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}
