package node

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
	"github.com/cloudsigma-csi/driver/pkg/device"
)

// Raw block: nothing is staged; the device node is bind-mounted on a file.
func TestRawBlockVolume(t *testing.T) {
	// A shared raw block volume (several servers, multimount drive) is
	// the same on each node.
	for _, mode := range []csi.VolumeCapability_AccessMode_Mode{snw, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER} {
		t.Run(mode.String(), func(t *testing.T) { testRawBlockVolume(t, mode) })
	}
}

func testRawBlockVolume(t *testing.T, mode csi.VolumeCapability_AccessMode_Mode) {
	e := newEnv(t)
	d := e.drive(64 * mib)
	vc := blockCap(mode)
	staging, target := e.path("staging"), e.path("pods", "a", "dev")

	e.must(e.stage(d, staging, vc, 64*mib))
	if got := mountedAt(t, staging); got != "" {
		t.Fatalf("raw block stage mounted %q", got)
	}
	e.must(e.publish(d, staging, target, vc, false))
	e.must(e.publish(d, staging, target, vc, false))
	wantCode(t, e.publish(d, staging, target, vc, true), codes.AlreadyExists)
	rdev, err := device.Number(d.Dev)
	e.must(err)
	if !device.IsBlock(target, rdev) {
		t.Fatalf("%s is not the drive's device node", target)
	}

	pattern := bytes.Repeat([]byte("cloudsigma"), 410)
	f, err := os.OpenFile(target, os.O_WRONLY, 0)
	e.must(err)
	_, err = f.WriteAt(pattern, mib)
	e.must(err)
	e.must(f.Sync())
	f.Close()
	got := make([]byte, len(pattern))
	g, err := os.Open(d.Dev)
	e.must(err)
	_, err = g.ReadAt(got, mib)
	g.Close()
	if err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("read back from %s: %v", d.Dev, err)
	}

	st, err := e.srv.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: d.UUID, VolumePath: target})
	e.must(err)
	if len(st.Usage) != 1 || st.Usage[0].Total != 64*mib || st.Usage[0].Unit != csi.VolumeUsage_BYTES {
		t.Errorf("stats = %v", st.Usage)
	}

	d.Grow(t, 128*mib)
	size, err := e.srv.NodeExpandVolume(e.ctx, &csi.NodeExpandVolumeRequest{VolumeId: d.UUID, VolumePath: target,
		VolumeCapability: vc, CapacityRange: &csi.CapacityRange{RequiredBytes: 128 * mib}})
	e.must(err)
	if size.CapacityBytes != 128*mib {
		t.Errorf("expanded capacity = %d", size.CapacityBytes)
	}

	e.must(e.unpublish(d, target))
	gone(t, target)
	e.must(e.unpublish(d, target))
	e.must(e.unstage(d, staging))
	gone(t, staging)
}

// Nothing that holds data is ever formatted: another filesystem, a
// partition table, a swap signature. The device's bytes stay identical.
func TestForeignDataIsNeverFormatted(t *testing.T) {
	writeMBR := func(t *testing.T, dev string) {
		mbr := make([]byte, 512)
		mbr[446+4] = 0x83 // one Linux partition at 1 MiB
		binary.LittleEndian.PutUint32(mbr[446+8:], 2048)
		binary.LittleEndian.PutUint32(mbr[446+12:], 2048*20)
		mbr[510], mbr[511] = 0x55, 0xaa
		f, err := os.OpenFile(dev, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(mbr, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		size    int64
		prepare func(t *testing.T, dev string)
		request string
	}{
		{"xfs when ext4 is requested", fsDriveSize, func(t *testing.T, dev string) { looptest.Run(t, "mkfs.xfs", dev) }, "ext4"},
		{"ext4 when xfs is requested", 64 * mib, func(t *testing.T, dev string) { looptest.Run(t, "mkfs.ext4", "-q", dev) }, "xfs"},
		{"partition table", 64 * mib, writeMBR, "ext4"},
		{"swap", 64 * mib, func(t *testing.T, dev string) { looptest.Run(t, "mkswap", dev) }, "ext4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.drive(tc.size)
			tc.prepare(t, d.Dev)
			before := digest(t, d.Dev)
			staging := e.path("staging")
			wantCode(t, e.stage(d, staging, mountCap(tc.request, snw), 0), codes.FailedPrecondition)
			if got := mountedAt(t, staging); got != "" {
				t.Errorf("mounted %q at the staging path", got)
			}
			if digest(t, d.Dev) != before {
				t.Fatal("the device's bytes changed")
			}
		})
	}
}

// A device smaller than the drive the controller attached is not used.
func TestWrongSizeDeviceRefused(t *testing.T) {
	e := newEnv(t)
	d := e.drive(64 * mib)
	staging := e.path("staging")
	wantCode(t, e.stage(d, staging, mountCap("ext4", snw), 128*mib), codes.FailedPrecondition)
	if got := blkidType(t, d.Dev); got != "" {
		t.Errorf("device formatted as %q", got)
	}
	if got := mountedAt(t, staging); got != "" {
		t.Errorf("mounted %q", got)
	}
	vc := blockCap(snw)
	_, err := e.srv.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: d.UUID, StagingTargetPath: staging,
		TargetPath: e.path("dev"), VolumeCapability: vc, PublishContext: pubCtx(d.UUID, 128*mib)})
	wantCode(t, err, codes.FailedPrecondition)
}

// The staging path already holds another volume, or the same volume staged
// differently: AlreadyExists, and nothing is touched.
func TestStageConflicts(t *testing.T) {
	e := newEnv(t)
	a, b := e.drive(64*mib), e.drive(64*mib)
	staging := e.path("staging")
	e.must(e.stage(a, staging, mountCap("ext4", snw), 0))
	wantCode(t, e.stage(b, staging, mountCap("ext4", snw), 0), codes.AlreadyExists)
	if got := blkidType(t, b.Dev); got != "" {
		t.Errorf("the second drive was formatted as %q", got)
	}
	wantCode(t, e.stage(a, staging, mountCap("xfs", snw), 0), codes.AlreadyExists)
	wantCode(t, e.stage(a, staging, mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), 0), codes.AlreadyExists)
	e.must(e.unstage(a, staging))
}

// A read-only access mode stages read-only and never formats.
func TestReaderOnlyModeNeverFormats(t *testing.T) {
	e := newEnv(t)
	d := e.drive(64 * mib)
	vc := mountCap("ext4", csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)
	wantCode(t, e.stage(d, e.path("s"), vc, 0), codes.FailedPrecondition)
	if got := blkidType(t, d.Dev); got != "" {
		t.Errorf("formatted as %q", got)
	}
	looptest.Run(t, "mkfs.ext4", "-q", d.Dev)
	e.must(e.stage(d, e.path("s"), vc, 0))
	e.must(e.publish(d, e.path("s"), e.path("t"), vc, false))
	if err := os.WriteFile(e.path("t", "x"), nil, 0o644); err == nil {
		t.Error("wrote to a reader-only volume")
	}
}

// Unpublish and unstage succeed on whatever is left: an unmounted
// directory, a bare file, nothing at all.
func TestTeardownLeftovers(t *testing.T) {
	e := newEnv(t)
	d := &looptest.Drive{UUID: volA}
	dir, file := e.path("leftover-dir"), e.path("leftover-file")
	e.must(os.MkdirAll(dir, 0o750))
	e.must(os.WriteFile(file, nil, 0o640))
	for _, p := range []string{dir, file, e.path("never-existed")} {
		e.must(e.unpublish(d, p))
		gone(t, p)
	}
	e.must(os.MkdirAll(dir, 0o750))
	e.must(e.unstage(d, dir))
	gone(t, dir)
}

// Health and stats notice a publish mount that disappeared, and a drive
// that is gone from the node.
func TestHealthAndStatsNoticeLoss(t *testing.T) {
	e := newEnv(t)
	d := e.drive(64 * mib)
	vc := mountCap("ext4", snw)
	staging, target := e.path("staging"), e.path("pod", "vol")
	e.must(e.stage(d, staging, vc, 0))
	e.must(e.publish(d, staging, target, vc, false))

	health := func() *csi.VolumeHealth {
		resp, err := e.srv.NodeGetVolumeHealth(e.ctx, &csi.NodeGetVolumeHealthRequest{
			VolumeId: d.UUID, VolumePublishPath: target, StagingTargetPath: staging})
		e.must(err)
		return resp.VolumeHealth
	}
	if h := health(); len(h.HealthStatuses) != 0 || h.VolumeId != d.UUID {
		t.Fatalf("healthy volume reported %v", h)
	}

	e.must(unix.Unmount(target, 0)) // lost behind the driver's back
	h := health()
	if len(h.HealthStatuses) != 1 || h.HealthStatuses[0].Reason != "NotPublished" {
		t.Errorf("after losing the publish mount: %v", h.HealthStatuses)
	}
	_, err := e.srv.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: d.UUID, VolumePath: target})
	wantCode(t, err, codes.NotFound)

	e.must(e.unpublish(d, target))
	e.must(e.unstage(d, staging))
	d.Detach(t)
	_, err = e.srv.NodeGetVolumeHealth(e.ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: d.UUID})
	wantCode(t, err, codes.NotFound)
}
