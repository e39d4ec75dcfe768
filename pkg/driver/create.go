package driver

import (
	"context"
	"fmt"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// ready is where a drive settles once creation, cloning or resizing is over.
var ready = []string{cloudsigma.StatusUnmounted, cloudsigma.StatusMounted}

// CreateVolume is idempotent by request name across restarts: the drive is
// named after the request and found again with the API's name filter.
func (c *controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
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
	if err := c.checkTopology(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	if err := checkRange(req.GetCapacityRange()); err != nil {
		return nil, err
	}
	release, err := c.locks.acquire("name/" + name)
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
	if d, err = c.finishVolume(ctx, d, name, size, p, src); err != nil {
		return nil, err
	}
	klog.InfoS("CreateVolume: drive ready", "name", name, "drive", d.UUID, "size", int64(d.Size), "source", sourceKey(src))
	return &csi.CreateVolumeResponse{Volume: c.csiVolume(d, p.volumeContext(), src)}, nil
}

// findVolume returns this cluster's drive named name, if any.
func (c *controller) findVolume(ctx context.Context, name string) (*cloudsigma.Drive, error) {
	drives, err := c.cloud.ListDrives(ctx, cloudsigma.Filter{Name: []string{name}})
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

// compatible reports why an existing drive cannot stand for the request.
func compatible(d *cloudsigma.Drive, name string, p volumeParams, src *csi.VolumeContentSource, r *csi.CapacityRange) error {
	// The meta of a clone not yet recorded is its source's: no evidence.
	if got, want := d.Meta[metaSource], sourceKey(src); got != want && recorded(d, name) {
		return fmt.Errorf("content source %q, requested %q", got, want)
	}
	// Drives recorded before the fingerprint existed carry none.
	if got := d.Meta[metaContext]; got != "" && got != p.contextKey() && recorded(d, name) {
		return fmt.Errorf("parameters that give another volume context (fsType, formatOptions or storageType)")
	}
	// A clone's storage type is the cloud's choice when the action ignores
	// the one asked for; only a drive created outright must match.
	if src == nil && d.StorageType != "" && d.StorageType != p.storageType {
		return fmt.Errorf("storage type %q, requested %q", d.StorageType, p.storageType)
	}
	size := int64(d.Size)
	if lim := r.GetLimitBytes(); lim > 0 && size > lim {
		return fmt.Errorf("size %d bytes, above the limit of %d bytes", size, lim)
	}
	// A clone smaller than requested is grown by finishVolume.
	if src == nil && size < r.GetRequiredBytes() {
		return fmt.Errorf("size %d bytes, requested at least %d bytes", size, r.GetRequiredBytes())
	}
	return nil
}

var transitional = []string{cloudsigma.StatusCreating, cloudsigma.StatusCloningDst, cloudsigma.StatusCloningSrc, cloudsigma.StatusResizing, cloudsigma.StatusCopying}

// startVolume issues the one API call that brings the drive into being.
func (c *controller) startVolume(ctx context.Context, name string, size int64, p volumeParams, src *csi.VolumeContentSource) (*cloudsigma.Drive, error) {
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
	return d, cloudError(err, "creating drive")
}

// finishVolume waits for the drive to settle, records ownership on clones
// (whose create call takes no meta or tags: a clone carries its source's
// meta and no tags, nor multimount) and grows clones that must be larger
// than their source.
func (c *controller) finishVolume(ctx context.Context, d *cloudsigma.Drive, name string, size int64, p volumeParams, src *csi.VolumeContentSource) (*cloudsigma.Drive, error) {
	d, err := c.waitReady(ctx, d.UUID)
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

func (c *controller) waitReady(ctx context.Context, uuid string) (*cloudsigma.Drive, error) {
	d, err := c.cloud.WaitDrive(ctx, uuid, c.wait, ready...)
	if err != nil {
		return nil, cloudError(err, "waiting for drive "+uuid)
	}
	return d, nil
}

// driveTags is the cluster tag plus the StorageClass's tags, as UUIDs.
func (c *controller) driveTags(ctx context.Context, p volumeParams) ([]string, error) {
	var out []string
	for _, name := range append([]string{c.clusterTag()}, p.tags...) {
		id, err := c.tagUUID(ctx, name, true)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// withTags calls write with the UUIDs of the drive's tags. A tag deleted by
// hand stays in the cache and the API rejects it: then the tags are looked
// up (or created) again and write runs once more.
func (c *controller) withTags(ctx context.Context, p volumeParams, write func(tags []string) error) error {
	for attempt := 0; ; attempt++ {
		tags, err := c.driveTags(ctx, p)
		if err != nil {
			return err
		}
		err = write(tags)
		if attempt > 0 || !(cloudsigma.IsValidation(err) || cloudsigma.IsNotFound(err)) {
			return err
		}
		c.mu.Lock()
		clear(c.tagUUIDs)
		c.mu.Unlock()
	}
}

// tagRefs merges new tag UUIDs into a drive's existing tags.
func tagRefs(d *cloudsigma.Drive, add []string) []string {
	var out []string
	for _, t := range d.Tags {
		out = append(out, t.UUID)
	}
	for _, t := range add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// sourceSize checks a content source exists and is usable, and returns its
// size: a clone cannot be smaller than its source.
func (c *controller) sourceSize(ctx context.Context, src *csi.VolumeContentSource) (int64, error) {
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
		d, err := c.cloud.GetDrive(ctx, id)
		if err != nil {
			return 0, cloudError(err, "source volume "+id)
		}
		if d.StorageType == ephemeralStorageType {
			return 0, status.Errorf(codes.InvalidArgument, "source volume %s is %s, which CloudSigma cannot clone", id, ephemeralStorageType)
		}
		return int64(d.Size), nil
	}
	return 0, status.Error(codes.InvalidArgument, "unsupported volume content source")
}

// DeleteVolume deletes a drive that is not attached anywhere. The API would
// delete a mounted drive; the driver refuses, because the data is in use.
func (c *controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	release, err := c.locks.acquire(id)
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
	if len(d.MountedOn) > 0 || d.Status == cloudsigma.StatusMounted {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s is still attached to server(s) %v", id, refUUIDs(d.MountedOn))
	}
	if slices.Contains(transitional, d.Status) {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s is %s", id, d.Status)
	}
	// CloudSigma deletes a drive's snapshots with it; the spec asks to
	// leave such a volume alone.
	if len(d.Snapshots) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "drive %s has %d snapshot(s), which CloudSigma would delete with it; delete them first", id, len(d.Snapshots))
	}
	if err := c.cloud.DeleteDrive(ctx, id); err != nil && !cloudsigma.IsNotFound(err) {
		return nil, cloudError(err, "deleting drive")
	}
	// Deletion is asynchronous; wait until the drive is gone so a new
	// volume with the same name is not mistaken for this one.
	err = cloudsigma.Poll(ctx, c.wait, func(ctx context.Context) (bool, error) {
		_, err := c.cloud.GetDrive(ctx, id)
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

func refUUIDs(refs []cloudsigma.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.UUID
	}
	return out
}
