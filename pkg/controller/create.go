package controller

import (
	"context"
	"slices"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// CreateVolume is idempotent by request name across restarts: the drive is
// named after the request and found again with the API's name filter.
func (c *Service) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p, err := parseParams(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p.multimount = multiNode(req.GetVolumeCapabilities()...)
	if err := p.checkFormatOptions(req.GetVolumeCapabilities()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := c.checkTopology(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	if err := checkRange(req.GetCapacityRange()); err != nil {
		return nil, err
	}
	release, err := c.lock(inflight.VolumeName(name))
	if err != nil {
		return nil, err
	}
	defer release()

	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	limits, ok := caps.Drives[p.storageType]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "storage type %q is not offered in this location (offered: %s)", p.storageType, storageTypes(caps))
	}
	size, err := pickSize(req.GetCapacityRange(), limits)
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	src := req.GetVolumeContentSource()
	if src != nil && p.storageType == ephemeralStorageType {
		return nil, status.Errorf(codes.InvalidArgument, "storage type %s is ephemeral: CloudSigma cannot clone or restore into it", ephemeralStorageType)
	}
	// An existing volume first: a retry must succeed even when its source
	// has been deleted since the first call.
	d, err := c.findVolume(ctx, name)
	if err != nil {
		return nil, err
	}
	if d != nil {
		if err := compatible(d, name, p, src, req.GetCapacityRange()); err != nil {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists as drive %s with other properties: %v", name, d.UUID, err)
		}
		klog.V(2).InfoS("CreateVolume: found existing drive", "name", name, "drive", d.UUID, "status", d.Status)
	} else {
		srcSize, err := c.sourceSize(ctx, src)
		if err != nil {
			return nil, err
		}
		if srcSize > size {
			// A clone is at least as large as its source.
			if !fits(srcSize, req.GetCapacityRange()) {
				return nil, status.Errorf(codes.OutOfRange, "the source is %d bytes, more than the limit of %d bytes", srcSize, req.GetCapacityRange().GetLimitBytes())
			}
			size = srcSize
		}
		if d, err = c.startVolume(ctx, name, size, p, src); err != nil {
			return nil, err
		}
	}
	id := d.UUID
	if d, err = c.finishVolume(ctx, d, name, size, p, src); err != nil {
		return nil, inProgress(err, id)
	}
	klog.InfoS("CreateVolume: drive ready", "name", name, "drive", d.UUID, "size", int64(d.Size), "source", sourceKey(src))
	return &csi.CreateVolumeResponse{Volume: c.csiVolume(d, p.volumeContext(), src)}, nil
}

// findVolume returns this cluster's drive named name, if any. Concurrent
// lookups share one list call (?name=a,b,c): a burst of creates spends its
// calls on the creates.
func (c *Service) findVolume(ctx context.Context, name string) (*cloudsigma.Drive, error) {
	drives, err := c.reads.Named(ctx, name)
	if err != nil {
		return nil, cloudError(err, "looking up drive by name")
	}
	var ours []cloudsigma.Drive
	for _, d := range drives {
		if d.Name == name && c.isOurs(&d, name) {
			ours = append(ours, d)
		}
	}
	switch len(ours) {
	case 0:
		return nil, nil
	case 1:
		return &ours[0], nil
	}
	// Never pick one at random: one of them holds data.
	return nil, status.Errorf(codes.Internal, "%d drives are named %q; resolve the duplicate by hand", len(ours), name)
}

// startVolume issues the one API call that brings the drive into being.
func (c *Service) startVolume(ctx context.Context, name string, size int64, p volumeParams, src *csi.VolumeContentSource) (*cloudsigma.Drive, error) {
	switch {
	case src.GetSnapshot() != nil:
		d, err := c.cloud.CloneSnapshot(ctx, src.GetSnapshot().GetSnapshotId(), cloudsigma.DriveClone{Name: name, Media: "disk", StorageType: p.storageType})
		return d, cloudError(err, "cloning snapshot "+src.GetSnapshot().GetSnapshotId())
	case src.GetVolume() != nil:
		d, err := c.cloud.CloneDrive(ctx, src.GetVolume().GetVolumeId(), cloudsigma.DriveClone{Name: name, Media: "disk", StorageType: p.storageType})
		return d, cloudError(err, "cloning drive "+src.GetVolume().GetVolumeId())
	}
	var d *cloudsigma.Drive
	err := c.withTags(ctx, p, func(tags []string) (err error) {
		d, err = c.cloud.CreateDrive(ctx, cloudsigma.DriveCreate{
			Name: name, Size: size, Media: "disk", StorageType: p.storageType,
			Meta: c.ownMeta(name, p, ""), Tags: tags, AllowMultimount: p.multimount,
		})
		return err
	})
	if cloudsigma.IsValidation(err) {
		c.forgetCapabilities() // the limits checked against may have changed
	}
	return d, cloudError(err, "creating drive")
}

// finishVolume waits for the drive to settle, records ownership on clones
// (whose create call takes no meta or tags: a clone carries its source's
// meta and no tags, nor multimount) and grows clones that must be larger
// than their source.
func (c *Service) finishVolume(ctx context.Context, d *cloudsigma.Drive, name string, size int64, p volumeParams, src *csi.VolumeContentSource) (*cloudsigma.Drive, error) {
	d, err := c.settle(ctx, d)
	if err != nil {
		return nil, err
	}
	err = c.withTags(ctx, p, func(tags []string) error {
		refs := tagRefs(d, tags)
		multimount := p.multimount && !d.AllowMultimount // clones start without it
		if recorded(d, name) && len(refs) == len(d.Tags) && !multimount {
			return nil
		}
		u := cloudsigma.DriveUpdate{Meta: withMeta(d, c.ownMeta(name, p, sourceKey(src))), Tags: refs}
		if multimount {
			u.AllowMultimount = &p.multimount
		}
		updated, err := c.cloud.UpdateDrive(ctx, d, u)
		if err == nil {
			d = updated
		}
		return err
	})
	if err != nil {
		return nil, cloudError(err, "recording ownership on drive")
	}
	if src != nil && int64(d.Size) < size {
		if _, err := c.cloud.ResizeDrive(ctx, d, size); err != nil {
			return nil, cloudError(err, "growing the new drive")
		}
		if d, err = c.waitReady(ctx, d.UUID); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// waitReady polls a drive until it settles; the polls of concurrent waits
// share one list call (DriveReads).
func (c *Service) waitReady(ctx context.Context, uuid string) (*cloudsigma.Drive, error) {
	d, err := cloudsigma.WaitDriveBy(ctx, c.reads.Get, uuid, c.wait, cloudsigma.DriveSettled...)
	if err != nil {
		return nil, cloudError(err, "waiting for drive "+uuid)
	}
	return d, nil
}

// settle is waitReady for a drive just answered by the API (its create or
// lookup): settled, the answer is used as is; in motion, the first read
// comes a poll interval later, as one right away would find it unchanged.
func (c *Service) settle(ctx context.Context, d *cloudsigma.Drive) (*cloudsigma.Drive, error) {
	if slices.Contains(cloudsigma.DriveSettled, d.Status) {
		return d, nil
	}
	opts, id := c.wait, d.UUID
	opts.Seen = time.Now()
	d, err := cloudsigma.WaitDriveBy(ctx, c.reads.Get, id, opts, cloudsigma.DriveSettled...)
	if err != nil {
		return nil, cloudError(err, "waiting for drive "+id)
	}
	return d, nil
}

// sourceSize checks a content source exists and is usable, and returns its
// size: a clone cannot be smaller than its source.
func (c *Service) sourceSize(ctx context.Context, src *csi.VolumeContentSource) (int64, error) {
	switch {
	case src == nil:
		return 0, nil
	case src.GetSnapshot() != nil:
		id := src.GetSnapshot().GetSnapshotId()
		if id == "" {
			return 0, status.Error(codes.InvalidArgument, "volume content source: snapshot_id is required")
		}
		s, err := c.cloud.WaitSnapshot(ctx, id, c.wait, cloudsigma.StatusAvailable)
		if err != nil {
			return 0, cloudError(err, "snapshot "+id)
		}
		return c.restoreSize(ctx, s, nil), nil
	case src.GetVolume() != nil:
		id := src.GetVolume().GetVolumeId()
		if id == "" {
			return 0, status.Error(codes.InvalidArgument, "volume content source: volume_id is required")
		}
		d, err := c.volume(ctx, id)
		if err != nil {
			return 0, err
		}
		if d.StorageType == ephemeralStorageType {
			return 0, status.Errorf(codes.InvalidArgument, "source volume %s is %s, which CloudSigma cannot clone", id, ephemeralStorageType)
		}
		return int64(d.Size), nil
	}
	return 0, status.Error(codes.InvalidArgument, "unsupported volume content source")
}
