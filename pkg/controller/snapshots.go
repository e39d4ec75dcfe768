package controller

import (
	"context"
	"strconv"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"
)

// CreateSnapshot is idempotent by name. It returns as soon as CloudSigma
// accepts the snapshot; ready_to_use follows its status and the snapshotter
// asks again until it is true.
func (c *Service) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	name, src := req.GetName(), req.GetSourceVolumeId()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if src == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume id is required")
	}
	// The source volume is locked too: deleting it meanwhile would take
	// the new snapshot with it.
	release, err := c.lock(inflight.SnapshotName(name), inflight.Volume(src))
	if err != nil {
		return nil, err
	}
	defer release()

	existing, err := c.cloud.ListSnapshots(ctx, cloudsigma.Filter{Name: []string{name}})
	if err != nil {
		return nil, cloudError(err, "looking up snapshot by name")
	}
	for i := range existing {
		s := &existing[i]
		if s.Name != name || c.ownedElsewhere(s.Meta) {
			continue
		}
		if s.Drive.UUID != src {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists for volume %s, not %s", name, s.Drive.UUID, src)
		}
		return c.snapshotResponse(ctx, s)
	}
	d, err := c.volume(ctx, src)
	if err != nil {
		return nil, err
	}
	if err := c.checkDriveOwner(d, "snapshot"); err != nil {
		return nil, err
	}
	if d.StorageType == ephemeralStorageType {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s is %s, which CloudSigma cannot snapshot", src, ephemeralStorageType)
	}
	s, err := c.cloud.CreateSnapshot(ctx, cloudsigma.SnapshotCreate{Drive: d.UUID, Name: name,
		Meta: c.snapshotMeta(d)})
	if err != nil {
		return nil, snapshotError(err, cloudsigma.IsPermission(err) && c.snapshotLimitReached(ctx, d), d.UUID)
	}
	klog.InfoS("CreateSnapshot: created", "name", name, "snapshot", s.UUID, "drive", src)
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s, int64(d.Size))}, nil
}

func (c *Service) snapshotResponse(ctx context.Context, s *cloudsigma.Snapshot) (*csi.CreateSnapshotResponse, error) {
	if s.Status == cloudsigma.StatusUnavailable {
		return nil, status.Errorf(codes.Internal, "snapshot %s is unavailable", s.UUID)
	}
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s, c.restoreSize(ctx, s, nil))}, nil
}

// snapshotLimitReached tells the account's snapshot limits (capabilities:
// total and per drive) from other refusals: CloudSigma answers both with
// 403 "operation not allowed".
func (c *Service) snapshotLimitReached(ctx context.Context, d *cloudsigma.Drive) bool {
	caps, err := c.cloud.GetCapabilities(ctx)
	if err != nil {
		return false
	}
	perDrive, total, current := caps.Snapshots["max_per_drive"], caps.Snapshots["max"], caps.Snapshots["current"]
	return (perDrive > 0 && int64(len(d.Snapshots)) >= int64(perDrive)) || (total > 0 && current >= total)
}

// restoreSize is the size the snapshot's drive had when it was taken
// (recorded in the snapshot's meta), else the drive's current size: a
// restore needs a drive at least that large. Zero (unknown) when neither is
// known. sizes caches drive sizes across calls.
func (c *Service) restoreSize(ctx context.Context, s *cloudsigma.Snapshot, sizes map[string]int64) int64 {
	if n, err := strconv.ParseInt(s.Meta[MetaSize], 10, 64); err == nil && n > 0 {
		return n
	}
	if size, ok := sizes[s.Drive.UUID]; ok {
		return size
	}
	var size int64
	if d, err := c.cloud.GetDrive(ctx, s.Drive.UUID); err == nil {
		size = int64(d.Size)
	}
	if sizes != nil {
		sizes[s.Drive.UUID] = size
	}
	return size
}

func csiSnapshot(s *cloudsigma.Snapshot, size int64) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId: s.UUID, SourceVolumeId: s.Drive.UUID, SizeBytes: size,
		CreationTime: timestamppb.New(parseTimestamp(s.Timestamp)),
		ReadyToUse:   s.Status == cloudsigma.StatusAvailable,
	}
}

// parseTimestamp reads the API's "2014-06-05 09:53:28.851859+00:00".
func parseTimestamp(ts string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05-07:00"} {
		if t, err := time.Parse(layout, ts); err == nil {
			return t
		}
	}
	return time.Unix(0, 0).UTC()
}

// DeleteSnapshot deletes a snapshot; one that does not exist is deleted.
func (c *Service) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is required")
	}
	release, err := c.lock(inflight.Snapshot(id))
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.cloud.GetSnapshot(ctx, id)
	if cloudsigma.IsNotFound(err) {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err != nil {
		return nil, cloudError(err, "reading snapshot")
	}
	if err := c.checkOwner("snapshot", id, s.Meta, "delete"); err != nil {
		return nil, err
	}
	if err := c.cloud.DeleteSnapshot(ctx, id); err != nil && !cloudsigma.IsNotFound(err) {
		return nil, cloudError(err, "deleting snapshot")
	}
	err = cloudsigma.Poll(ctx, c.wait, func(ctx context.Context) (bool, error) {
		_, err := c.cloud.GetSnapshot(ctx, id)
		if cloudsigma.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return nil, cloudError(err, "waiting for snapshot deletion")
	}
	c.deleteIfRetired(ctx, s.Drive.UUID)
	return &csi.DeleteSnapshotResponse{}, nil
}

// GetSnapshot returns one snapshot.
func (c *Service) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is required")
	}
	s, err := c.cloud.GetSnapshot(ctx, req.GetSnapshotId())
	if err != nil {
		return nil, cloudError(err, "reading snapshot")
	}
	return &csi.GetSnapshotResponse{Snapshot: csiSnapshot(s, c.restoreSize(ctx, s, nil))}, nil
}

// ListSnapshots lists by id, by source volume, or all, with offset tokens.
func (c *Service) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	p, err := readPage(req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	var snaps []cloudsigma.Snapshot
	total := 0
	switch {
	case req.GetSnapshotId() != "":
		s, err := c.cloud.GetSnapshot(ctx, req.GetSnapshotId())
		if cloudsigma.IsNotFound(err) {
			return &csi.ListSnapshotsResponse{}, nil
		}
		if err != nil {
			return nil, cloudError(err, "reading snapshot")
		}
		if req.GetSourceVolumeId() != "" && s.Drive.UUID != req.GetSourceVolumeId() {
			return &csi.ListSnapshotsResponse{}, nil
		}
		snaps, total = []cloudsigma.Snapshot{*s}, 1
	default:
		var f cloudsigma.Filter
		if req.GetSourceVolumeId() != "" {
			f.Drive = []string{req.GetSourceVolumeId()}
		}
		pg, err := c.cloud.ListSnapshotsPage(ctx, f, p.offset, p.limit())
		if err != nil {
			return nil, cloudError(err, "listing snapshots")
		}
		snaps, total = pg.Items, pg.Total
	}
	if err := p.check(total, "snapshots"); err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	resp := &csi.ListSnapshotsResponse{}
	for i := range snaps {
		s := &snaps[i]
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(s, c.restoreSize(ctx, s, sizes))})
	}
	resp.NextToken = p.nextToken(len(snaps), total)
	return resp, nil
}
