package node

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
)

// xfs needs at least 300 MiB; both filesystems get the same drive size.
const fsDriveSize = 512 * mib

// Stage (real mkfs), publish rw and ro, data through both, stats, every
// step repeated for idempotency, teardown, and a restage that keeps the data.
func TestFilesystemLifecycle(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			e := newEnv(t)
			d := e.drive(fsDriveSize)
			vc := mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
			staging, rw, ro := e.path("staging"), e.path("pods", "a", "vol"), e.path("pods", "b", "vol")

			e.must(e.stage(d, staging, vc, fsDriveSize))
			if got := blkidType(t, d.Dev); got != fs {
				t.Fatalf("device formatted as %q, want %s", got, fs)
			}
			e.must(e.stage(d, staging, vc, fsDriveSize))
			if got := mountedAt(t, staging); got != fs {
				t.Fatalf("staging mount = %q", got)
			}

			e.must(e.publish(d, staging, rw, vc, false))
			e.must(e.publish(d, staging, rw, vc, false))
			data := []byte("written through the pod's mount\n")
			e.must(os.WriteFile(filepath.Join(rw, "f"), data, 0o644))
			if got, err := os.ReadFile(filepath.Join(staging, "f")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read via staging = %q, %v", got, err)
			}

			e.must(e.publish(d, staging, ro, vc, true))
			if got, err := os.ReadFile(filepath.Join(ro, "f")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read via ro publish = %q, %v", got, err)
			}
			err := os.WriteFile(filepath.Join(ro, "g"), data, 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Fatalf("write to the read-only publish: %v, want EROFS", err)
			}
			wantCode(t, e.publish(d, staging, rw, vc, true), codes.AlreadyExists)

			st, err := e.srv.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: d.UUID, VolumePath: rw})
			e.must(err)
			bytesU, inodes := st.Usage[0], st.Usage[1]
			if bytesU.Unit != csi.VolumeUsage_BYTES || bytesU.Total < 400*mib || bytesU.Total > fsDriveSize ||
				bytesU.Used <= 0 || bytesU.Available <= 0 || bytesU.Available > bytesU.Total {
				t.Errorf("byte usage = %v", bytesU)
			}
			if inodes.Unit != csi.VolumeUsage_INODES || inodes.Total <= 0 || inodes.Used <= 0 {
				t.Errorf("inode usage = %v", inodes)
			}

			for _, target := range []string{rw, ro, rw, ro} {
				e.must(e.unpublish(d, target))
				gone(t, target)
			}
			e.must(e.unstage(d, staging))
			gone(t, staging)
			e.must(e.unstage(d, staging))

			// Restage: the filesystem is mounted, not recreated.
			e.must(e.stage(d, staging, vc, fsDriveSize))
			if got, err := os.ReadFile(filepath.Join(staging, "f")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("data after restage = %q, %v", got, err)
			}
			e.must(e.unstage(d, staging))
		})
	}
}

// A filesystem published ro still grows: through its writable staging mount.
func TestExpandOnline(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			e := newEnv(t)
			d := e.drive(fsDriveSize)
			vc := mountCap(fs, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
			staging, target, roTarget := e.path("staging"), e.path("pod", "vol"), e.path("pod-ro", "vol")
			e.must(e.stage(d, staging, vc, fsDriveSize))
			e.must(e.publish(d, staging, target, vc, false))
			e.must(e.publish(d, staging, roTarget, vc, true))
			e.must(os.WriteFile(filepath.Join(target, "keep"), []byte("data"), 0o644))
			before := fsSize(t, target)

			_, err := e.expand(d, target, staging, 2*fsDriveSize)
			wantCode(t, err, codes.Unavailable) // the drive has not grown yet

			d.Grow(t, 2*fsDriveSize)
			got, err := e.expand(d, target, staging, 2*fsDriveSize)
			if fs == "ext4" && !canResizeExt4Online(t) {
				withoutExt4Resize(t, err)
			}
			e.must(err)
			if got != 2*fsDriveSize {
				t.Errorf("capacity = %d, want %d", got, 2*fsDriveSize)
			}
			after := fsSize(t, target)
			if after < before+fsDriveSize*9/10 {
				t.Errorf("filesystem %d -> %d bytes after growing the device by %d", before, after, fsDriveSize)
			}

			d.Grow(t, 3*fsDriveSize)
			got, err = e.expand(d, roTarget, staging, 0)
			e.must(err)
			if got != 3*fsDriveSize || fsSize(t, roTarget) < after+fsDriveSize*9/10 {
				t.Errorf("via ro publish: capacity %d, fs %d bytes", got, fsSize(t, roTarget))
			}
			if b, err := os.ReadFile(filepath.Join(roTarget, "keep")); err != nil || string(b) != "data" {
				t.Errorf("data after grow = %q, %v", b, err)
			}
			// Idempotent: nothing left to grow.
			if _, err := e.expand(d, target, staging, 0); err != nil {
				t.Errorf("second expand: %v", err)
			}
		})
	}
}

// A drive cloned or restored into a bigger drive carries a smaller
// filesystem; staging grows it to the device.
func TestStageGrowsFilesystem(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			e := newEnv(t)
			d := e.drive(fsDriveSize)
			looptest.Run(t, "mkfs."+fs, d.Dev)
			d.Grow(t, 2*fsDriveSize)
			staging := e.path("staging")
			// ext4 grows before mounting, so this holds without
			// CAP_SYS_RESOURCE too.
			e.must(e.stage(d, staging, mountCap(fs, snw), 2*fsDriveSize))
			if got := fsSize(t, staging); got < fsDriveSize*3/2 {
				t.Errorf("filesystem is %d bytes on a %d byte device", got, 2*fsDriveSize)
			}
			e.must(e.unstage(d, staging))
		})
	}
}

// SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) allows one target, for
// filesystem and raw block alike.
func TestSingleWriterAllowsOneTarget(t *testing.T) {
	e := newEnv(t)
	sw := csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER

	d := e.drive(64 * mib)
	vc := mountCap("ext4", sw)
	staging := e.path("staging")
	e.must(e.stage(d, staging, vc, 0))
	e.must(e.publish(d, staging, e.path("a"), vc, false))
	e.must(e.publish(d, staging, e.path("a"), vc, false))
	wantCode(t, e.publish(d, staging, e.path("b"), vc, false), codes.FailedPrecondition)
	gone(t, e.path("b"))

	b := e.drive(64 * mib)
	bvc := blockCap(sw)
	bstaging := e.path("bstaging")
	e.must(e.stage(b, bstaging, bvc, 0))
	e.must(e.publish(b, bstaging, e.path("dev", "a"), bvc, false))
	e.must(e.publish(b, bstaging, e.path("dev", "a"), bvc, false))
	wantCode(t, e.publish(b, bstaging, e.path("dev", "b"), bvc, false), codes.FailedPrecondition)
	e.must(e.unpublish(b, e.path("dev", "a")))
	e.must(e.publish(b, bstaging, e.path("dev", "b"), bvc, false))
}
