package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// Unit tests of the logic that runs before any device or mount is touched.
// The decisions about devices and mounts are tested on a fake node
// (fakes_test.go) in stage_test.go, publish_test.go and so on; the real
// behaviour (mkfs, mounts, loop devices, as root) in *_root_test.go.

const volA = "3f6b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// fakeFinder returns err for every drive; gate, when set, holds Find until
// closed, and started reports each call.
type fakeFinder struct {
	err     error
	gate    chan struct{}
	started chan string
}

func (f *fakeFinder) Find(ctx context.Context, driveUUID string, _ int64) (string, error) {
	if f.started != nil {
		f.started <- driveUUID
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return "", f.err
}

func (f *fakeFinder) FindNow(ctx context.Context, driveUUID string, size int64) (string, error) {
	return f.Find(ctx, driveUUID, size)
}

func newTestService(t *testing.T, f device.Finder) *Service {
	t.Helper()
	s, err := New(Config{NodeID: "node-1", Location: "zrh", Finder: f})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mountCap(fs string, mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

const snw = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER

func pubCtx(id string, size int64) map[string]string {
	return map[string]string{params.PublishDriveUUID: id, params.PublishDriveSize: fmt.Sprint(size)}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v (code %s), want code %s", err, status.Code(err), code)
	}
}

func TestNewAndInfo(t *testing.T) {
	if _, err := New(Config{Finder: &fakeFinder{}}); err == nil {
		t.Error("New without a node ID succeeded")
	}
	if _, err := New(Config{NodeID: "n"}); err == nil {
		t.Error("New without a finder succeeded")
	}
	s := newTestService(t, &fakeFinder{})
	info, err := s.NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.NodeId != "node-1" || info.MaxVolumesPerNode != DefaultMaxVolumesPerNode ||
		info.AccessibleTopology.GetSegments()[params.TopologyKey] != "zrh" {
		t.Errorf("NodeGetInfo = %v", info)
	}
	caps, err := s.NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.NodeServiceCapability_RPC_Type]bool{}
	for _, c := range caps.Capabilities {
		got[c.GetRpc().GetType()] = true
	}
	for _, want := range nodeCapabilities {
		if !got[want] {
			t.Errorf("capability %s missing", want)
		}
	}
	if len(got) != 5 {
		t.Errorf("capabilities = %v", got)
	}
}

func TestArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	notFound := newTestService(t, &fakeFinder{err: fmt.Errorf("x: %w", device.ErrNotFound)})
	stage := func(s *Service, r *csi.NodeStageVolumeRequest) error { _, err := s.NodeStageVolume(ctx, r); return err }
	stageReq := func(mod func(r *csi.NodeStageVolumeRequest)) *csi.NodeStageVolumeRequest {
		r := &csi.NodeStageVolumeRequest{VolumeId: volA, StagingTargetPath: dir + "/s", VolumeCapability: mountCap("", snw), PublishContext: pubCtx(volA, 1<<30)}
		mod(r)
		return r
	}
	finderErr := func(err error) *Service { return newTestService(t, &fakeFinder{err: err}) }
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"stage: no volume id", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.VolumeId = "" }))
		}, codes.InvalidArgument},
		{"stage: no staging path", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.StagingTargetPath = "" }))
		}, codes.InvalidArgument},
		{"stage: no capability", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.VolumeCapability = nil }))
		}, codes.InvalidArgument},
		{"stage: no access mode", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.VolumeCapability.AccessMode = nil }))
		}, codes.InvalidArgument},
		{"stage: multi-node writer", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeCapability = mountCap("", csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
			}))
		}, codes.FailedPrecondition},
		{"stage: multi-node reader", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeCapability = mountCap("", csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
			}))
		}, codes.FailedPrecondition},
		// A shared raw block volume passes the capability check.
		{"stage: multi-node writer block, volume not attached", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeCapability = blockCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
			}))
		}, codes.NotFound},
		// publish_context is OPTIONAL: a volume that is not here is NotFound.
		{"stage: no publish context, volume not attached", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.PublishContext = nil }))
		}, codes.NotFound},
		{"stage: publish context for another drive", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.PublishContext = pubCtx(volA[:35]+"0", 1) }))
		}, codes.InvalidArgument},
		{"stage: bad drive size", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.PublishContext[params.PublishDriveSize] = "1GiB" }))
		}, codes.InvalidArgument},
		{"stage: unsupported fs", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.VolumeCapability = mountCap("btrfs", snw) }))
		}, codes.InvalidArgument},
		{"stage: unsupported fs from volume context", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) { r.VolumeContext = map[string]string{params.ParamFSType: "ntfs"} }))
		}, codes.InvalidArgument},
		{"stage: format option naming a device", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeContext = map[string]string{params.ParamFormatOptions: "-b 4096 /dev/sda"}
			}))
		}, codes.InvalidArgument},
		// Relative paths too: mke2fs -d copies a directory into the volume.
		{"stage: format option reading a relative path", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeContext = map[string]string{params.ParamFormatOptions: "-d etc"}
			}))
		}, codes.InvalidArgument},
		{"stage: xfs log on another device, relative", func() error {
			return stage(notFound, stageReq(func(r *csi.NodeStageVolumeRequest) {
				r.VolumeCapability = mountCap("xfs", snw)
				r.VolumeContext = map[string]string{params.ParamFormatOptions: "-l logdev=dev/loop0"}
			}))
		}, codes.InvalidArgument},
		{"stage: device not found", func() error { return stage(notFound, stageReq(func(*csi.NodeStageVolumeRequest) {})) }, codes.NotFound},
		{"stage: device unproven", func() error {
			return stage(finderErr(device.ErrIdentity), stageReq(func(*csi.NodeStageVolumeRequest) {}))
		}, codes.NotFound},
		{"stage: two candidates", func() error {
			return stage(finderErr(device.ErrAmbiguous), stageReq(func(*csi.NodeStageVolumeRequest) {}))
		}, codes.FailedPrecondition},
		{"stage: too small", func() error { return stage(finderErr(device.ErrSize), stageReq(func(*csi.NodeStageVolumeRequest) {})) }, codes.FailedPrecondition},
		{"unstage: no volume id", func() error {
			_, err := notFound.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{StagingTargetPath: dir})
			return err
		}, codes.InvalidArgument},
		{"unstage: no staging path", func() error {
			_, err := notFound.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: volA})
			return err
		}, codes.InvalidArgument},
		{"publish: no volume id", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{TargetPath: dir + "/t", StagingTargetPath: dir, VolumeCapability: mountCap("", snw)})
			return err
		}, codes.InvalidArgument},
		{"publish: no target", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, StagingTargetPath: dir, VolumeCapability: mountCap("", snw)})
			return err
		}, codes.InvalidArgument},
		{"publish: no capability", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, TargetPath: dir + "/t"})
			return err
		}, codes.InvalidArgument},
		{"publish: no staging path", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, TargetPath: dir + "/t", VolumeCapability: mountCap("", snw)})
			return err
		}, codes.FailedPrecondition},
		{"publish: volume not on this node", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, TargetPath: dir + "/t", StagingTargetPath: dir, VolumeCapability: mountCap("", snw)})
			return err
		}, codes.NotFound},
		{"publish: unsupported fs", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, TargetPath: dir + "/t", StagingTargetPath: dir, VolumeCapability: mountCap("ntfs", snw)})
			return err
		}, codes.InvalidArgument},
		{"publish block: device not found", func() error {
			_, err := notFound.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, TargetPath: dir + "/b", StagingTargetPath: dir,
				VolumeCapability: blockCap(snw), PublishContext: pubCtx(volA, 0)})
			return err
		}, codes.NotFound},
		{"unpublish: no volume id", func() error {
			_, err := notFound.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{TargetPath: dir})
			return err
		}, codes.InvalidArgument},
		{"unpublish: no target", func() error {
			_, err := notFound.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volA})
			return err
		}, codes.InvalidArgument},
		{"stats: no volume id", func() error {
			_, err := notFound.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumePath: dir})
			return err
		}, codes.InvalidArgument},
		{"stats: no path", func() error {
			_, err := notFound.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volA})
			return err
		}, codes.InvalidArgument},
		{"stats: missing path", func() error {
			_, err := notFound.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volA, VolumePath: "some/path"})
			return err
		}, codes.NotFound},
		{"stats: directory with nothing mounted", func() error {
			_, err := notFound.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volA, VolumePath: dir})
			return err
		}, codes.NotFound},
		{"expand: no volume id", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumePath: dir})
			return err
		}, codes.InvalidArgument},
		{"expand: no path", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA})
			return err
		}, codes.InvalidArgument},
		{"expand: missing path", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: "some/path"})
			return err
		}, codes.NotFound},
		// NodeExpandVolume's table: "Exceeds capabilities | 3 INVALID_ARGUMENT".
		{"expand: multi-node capability", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: dir,
				VolumeCapability: mountCap("", csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)})
			return err
		}, codes.InvalidArgument},
		{"expand: limit below required", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: dir,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 30, LimitBytes: 1 << 30}})
			return err
		}, codes.OutOfRange},
		{"expand: negative capacity", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: dir,
				CapacityRange: &csi.CapacityRange{RequiredBytes: -1}})
			return err
		}, codes.OutOfRange},
		{"expand: device not found", func() error {
			_, err := notFound.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: dir})
			return err
		}, codes.NotFound},
		{"health: no volume id", func() error {
			_, err := notFound.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
			return err
		}, codes.InvalidArgument},
		{"health: nothing on this node", func() error {
			_, err := notFound.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: volA})
			return err
		}, codes.NotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code) })
	}
}

// A published path whose device is gone is reported, not NotFound.
func TestHealthReportsMissingDevice(t *testing.T) {
	s := newTestService(t, &fakeFinder{err: device.ErrNotFound})
	dir := t.TempDir()
	resp, err := s.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{
		VolumeId: volA, VolumePublishPath: dir, StagingTargetPath: filepath.Join(dir, "gone")})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, e := range resp.VolumeHealth.HealthStatuses {
		if e.Status != csi.VolumeHealthErrorType_INACCESSIBLE {
			t.Errorf("entry %v is not INACCESSIBLE", e)
		}
		reasons[e.Reason] = true
	}
	if !reasons["DeviceNotFound"] || !reasons["NotPublished"] || len(reasons) != 2 {
		t.Errorf("reasons = %v, want DeviceNotFound and NotPublished", reasons)
	}
}

// A second operation on a volume that is busy is Aborted at once; other
// volumes are not held up.
func TestInFlightGuardIsPerVolume(t *testing.T) {
	volB := "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	f := &fakeFinder{err: device.ErrNotFound, gate: make(chan struct{}), started: make(chan string, 4)}
	s := newTestService(t, f)
	ctx := context.Background()
	req := func(id string) *csi.NodeStageVolumeRequest {
		return &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: t.TempDir(), VolumeCapability: mountCap("", snw), PublishContext: pubCtx(id, 0)}
	}
	first := make(chan error, 1)
	go func() { _, err := s.NodeStageVolume(ctx, req(volA)); first <- err }()
	if got := <-f.started; got != volA {
		t.Fatalf("finder called for %s", got)
	}

	_, err := s.NodeStageVolume(ctx, req(volA))
	wantCode(t, err, codes.Aborted)
	_, err = s.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volA, TargetPath: t.TempDir()})
	wantCode(t, err, codes.Aborted)

	second := make(chan error, 1)
	go func() { _, err := s.NodeStageVolume(ctx, req(volB)); second <- err }()
	select {
	case got := <-f.started:
		if got != volB {
			t.Fatalf("finder called for %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("another volume waited for the busy one")
	}
	close(f.gate)
	wantCode(t, <-first, codes.NotFound)
	wantCode(t, <-second, codes.NotFound)
	// Released: the volume can be operated on again.
	_, err = s.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volA, TargetPath: filepath.Join(t.TempDir(), "x")})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{failf(errInvalid, "x"), codes.InvalidArgument},
		{fmt.Errorf("ctx: %w", failf(errConflict, "x")), codes.AlreadyExists},
		{fmt.Errorf("wrapped: %w", device.ErrSize), codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{mount.NewMountError(mount.UnformattedReadOnly, "x"), codes.FailedPrecondition},
		{mount.NewMountError(mount.FormatFailed, "x"), codes.Internal},
		{status.Error(codes.Unavailable, "x"), codes.Unavailable},
		{errors.New("boom"), codes.Internal},
	} {
		if got := status.Code(toStatus(tc.err)); got != tc.code {
			t.Errorf("toStatus(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
