package node

import (
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
)

// Error-table rules of the spec, on real devices and mounts.

// publish_context is OPTIONAL: without it the device is still found (and
// proven by its identity), only the size check is skipped.
func TestWithoutPublishContext(t *testing.T) {
	e := newEnv(t)
	d := e.drive(64 * mib)
	vc := mountCap("ext4", snw)
	staging, target := e.path("staging"), e.path("pod", "vol")
	e.must(os.MkdirAll(staging, 0o750))
	_, err := e.srv.NodeStageVolume(e.ctx, &csi.NodeStageVolumeRequest{
		VolumeId: d.UUID, StagingTargetPath: staging, VolumeCapability: vc})
	e.must(err)
	_, err = e.srv.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{
		VolumeId: d.UUID, StagingTargetPath: staging, TargetPath: target, VolumeCapability: vc})
	e.must(err)
	if got := mountedAt(t, target); got != "ext4" {
		t.Fatalf("target mount = %q", got)
	}
	e.must(e.unpublish(d, target))
	e.must(e.unstage(d, staging))
}

// "Volume does not exist | 5 NOT_FOUND | ... does not exist on specified
// volume_path": another volume's path, mounted or raw, is NotFound.
func TestStatsOnlyAtTheVolumesPath(t *testing.T) {
	e := newEnv(t)
	a, b := e.drive(64*mib), e.drive(64*mib)
	vc := mountCap("ext4", snw)
	aStaging, aTarget := e.path("a", "staging"), e.path("a", "target")
	e.must(e.stage(a, aStaging, vc, 0))
	e.must(e.publish(a, aStaging, aTarget, vc, false))
	bvc := blockCap(snw)
	bStaging, bTarget := e.path("b", "staging"), e.path("b", "dev")
	e.must(e.stage(b, bStaging, bvc, 0))
	e.must(e.publish(b, bStaging, bTarget, bvc, false))

	stats := func(volID, path string) error {
		_, err := e.srv.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volID, VolumePath: path})
		return err
	}
	e.must(stats(a.UUID, aTarget))
	e.must(stats(a.UUID, aStaging))
	e.must(stats(b.UUID, bTarget))
	wantCode(t, stats(b.UUID, aTarget), codes.NotFound)
	wantCode(t, stats(b.UUID, aStaging), codes.NotFound)
	wantCode(t, stats(a.UUID, bTarget), codes.NotFound)
	wantCode(t, stats(a.UUID, bStaging), codes.NotFound)
	wantCode(t, stats(volA, aTarget), codes.NotFound) // no such drive here
}

// NodeExpandVolume: a capacity range that cannot hold the volume is
// OUT_OF_RANGE; a path that is not the volume's is NOT_FOUND; the response
// carries the capacity.
func TestExpandRangeAndPath(t *testing.T) {
	e := newEnv(t)
	a, b := e.drive(64*mib), e.drive(64*mib)
	vc := mountCap("ext4", snw)
	aStaging, bStaging := e.path("a", "staging"), e.path("b", "staging")
	e.must(e.stage(a, aStaging, vc, 0))
	e.must(e.stage(b, bStaging, vc, 0))

	expand := func(r *csi.CapacityRange, path string) (int64, error) {
		resp, err := e.srv.NodeExpandVolume(e.ctx, &csi.NodeExpandVolumeRequest{VolumeId: a.UUID, VolumePath: path,
			StagingTargetPath: aStaging, CapacityRange: r, VolumeCapability: vc})
		return resp.GetCapacityBytes(), err
	}
	_, err := expand(&csi.CapacityRange{LimitBytes: 32 * mib}, aStaging)
	wantCode(t, err, codes.OutOfRange)
	_, err = expand(nil, bStaging)
	wantCode(t, err, codes.NotFound)
	for _, r := range []*csi.CapacityRange{nil, {RequiredBytes: 32 * mib}, {RequiredBytes: 64 * mib, LimitBytes: 64 * mib}} {
		got, err := expand(r, aStaging)
		e.must(err)
		if got != 64*mib {
			t.Errorf("range %v: capacity_bytes = %d, want %d", r, got, 64*mib)
		}
	}
	e.must(e.unstage(a, aStaging))
	e.must(e.unstage(b, bStaging))
}

// A staging path holds one access type: staging the same volume as raw
// block over its filesystem, or as a filesystem over its raw block stage,
// is ALREADY_EXISTS, and the raw device is never formatted.
func TestStageIncompatibleAccessType(t *testing.T) {
	e := newEnv(t)
	a := e.drive(64 * mib)
	aStaging := e.path("a", "staging")
	e.must(e.stage(a, aStaging, mountCap("ext4", snw), 0))
	wantCode(t, e.stage(a, aStaging, blockCap(snw), 0), codes.AlreadyExists)
	// Raw access to a device whose filesystem is mounted is refused too.
	wantCode(t, e.publish(a, aStaging, e.path("a", "dev"), blockCap(snw), false), codes.FailedPrecondition)
	gone(t, e.path("a", "dev"))
	e.must(e.unstage(a, aStaging))

	b := e.drive(64 * mib)
	bStaging, bTarget := e.path("b", "staging"), e.path("b", "dev")
	bvc := blockCap(snw)
	e.must(e.stage(b, bStaging, bvc, 0))
	e.must(e.stage(b, bStaging, bvc, 0))
	wantCode(t, e.stage(b, bStaging, blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), 0), codes.AlreadyExists)
	wantCode(t, e.stage(b, bStaging, mountCap("ext4", snw), 0), codes.AlreadyExists)
	if got := blkidType(t, b.Dev); got != "" {
		t.Fatalf("the raw block volume was formatted as %q", got)
	}
	if got := mountedAt(t, bStaging); got != "" {
		t.Fatalf("mounted %q on the raw block staging path", got)
	}
	e.must(e.publish(b, bStaging, bTarget, bvc, false))
	e.must(e.unpublish(b, bTarget))
	e.must(e.unstage(b, bStaging))
	gone(t, bStaging)
	// Unstaged: the path may hold a filesystem now.
	e.must(e.stage(b, bStaging, mountCap("ext4", snw), 0))
	e.must(e.unstage(b, bStaging))
}

// Publish binds the staging mount of this volume only, with the staged
// filesystem; another volume's staging path is not this volume's stage.
func TestPublishChecksTheStagedVolume(t *testing.T) {
	e := newEnv(t)
	a, b := e.drive(64*mib), e.drive(64*mib)
	vc := mountCap("ext4", snw)
	aStaging, bStaging, target := e.path("a", "staging"), e.path("b", "staging"), e.path("pod", "vol")
	e.must(e.stage(b, bStaging, vc, 0))
	wantCode(t, e.publish(a, bStaging, target, vc, false), codes.FailedPrecondition)
	e.must(os.MkdirAll(aStaging, 0o750))
	wantCode(t, e.publish(a, aStaging, target, vc, false), codes.FailedPrecondition)
	gone(t, target)

	e.must(e.stage(a, aStaging, vc, 0))
	wantCode(t, e.publish(a, aStaging, target, mountCap("xfs", snw), false), codes.FailedPrecondition)
	gone(t, target)
	e.must(e.publish(a, aStaging, target, vc, false))
	e.must(e.publish(a, aStaging, target, mountCap("", snw), false))
	wantCode(t, e.publish(a, aStaging, target, mountCap("xfs", snw), false), codes.AlreadyExists)
	e.must(e.unpublish(a, target))
	e.must(e.unstage(a, aStaging))
	e.must(e.unstage(b, bStaging))
}

// "If the volume corresponding to the volume_id is not staged to the
// staging_target_path, the Plugin MUST reply 0 OK": without unmounting the
// volume that is staged there.
func TestUnstageLeavesAnotherVolume(t *testing.T) {
	e := newEnv(t)
	a, b := e.drive(64*mib), e.drive(64*mib)
	staging := e.path("staging")
	e.must(e.stage(b, staging, mountCap("ext4", snw), 0))
	e.must(e.unstage(a, staging))
	if got := mountedAt(t, staging); got != "ext4" {
		t.Fatalf("volume b's staging mount = %q after unstaging a", got)
	}
	e.must(e.unstage(b, staging))
	gone(t, staging)
	e.must(e.unstage(&looptest.Drive{UUID: volA}, staging))
}
