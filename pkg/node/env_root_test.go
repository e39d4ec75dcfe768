package node

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// env is one emulated node: a temp dir holding by-id links, backing files,
// staging and target paths, and a Service using the real mounter, mkfs and
// resize tools on real loop devices.
type env struct {
	t    *testing.T
	dir  string
	byID string
	srv  *Service
	ctx  context.Context
}

const mib = int64(1) << 20

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t, "loop devices")
	dir := t.TempDir()
	// Registered after TempDir, so it runs before the directory is removed:
	// never RemoveAll through a live mount.
	t.Cleanup(func() { looptest.UnmountUnder(t, dir) })
	e := &env{t: t, dir: dir, byID: filepath.Join(dir, "by-id"), ctx: context.Background()}
	// Loop devices are drives only in the simulator's emulated guest.
	if err := virtio.DeclareEmulatedGuest(e.byID); err != nil {
		t.Fatal(err)
	}
	finder := &device.VirtioFinder{ByIDDir: e.byID, Trigger: device.NoTrigger,
		Timeout: 2 * time.Second, Backoff: 20 * time.Millisecond}
	srv, err := New(Config{NodeID: "node-1", Location: "zrh", Finder: finder})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	return e
}

// drive attaches a new blank drive and creates its by-id link.
func (e *env) drive(size int64) *looptest.Drive {
	d := looptest.New(e.t, e.dir, size)
	d.Link(e.t, e.byID)
	return d
}

func (e *env) path(parts ...string) string {
	return filepath.Join(append([]string{e.dir}, parts...)...)
}

func (e *env) stage(d *looptest.Drive, staging string, vc *csi.VolumeCapability, size int64) error {
	// The CO creates the staging directory.
	if err := os.MkdirAll(staging, 0o750); err != nil {
		e.t.Fatal(err)
	}
	_, err := e.srv.NodeStageVolume(e.ctx, &csi.NodeStageVolumeRequest{
		VolumeId: d.UUID, StagingTargetPath: staging, VolumeCapability: vc, PublishContext: pubCtx(d.UUID, size)})
	return err
}

func (e *env) publish(d *looptest.Drive, staging, target string, vc *csi.VolumeCapability, ro bool) error {
	_, err := e.srv.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{
		VolumeId: d.UUID, StagingTargetPath: staging, TargetPath: target, VolumeCapability: vc,
		Readonly: ro, PublishContext: pubCtx(d.UUID, 0)})
	return err
}

func (e *env) unpublish(d *looptest.Drive, target string) error {
	_, err := e.srv.NodeUnpublishVolume(e.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: d.UUID, TargetPath: target})
	return err
}

func (e *env) unstage(d *looptest.Drive, staging string) error {
	_, err := e.srv.NodeUnstageVolume(e.ctx, &csi.NodeUnstageVolumeRequest{VolumeId: d.UUID, StagingTargetPath: staging})
	return err
}

func (e *env) expand(d *looptest.Drive, path, staging string, want int64) (int64, error) {
	resp, err := e.srv.NodeExpandVolume(e.ctx, &csi.NodeExpandVolumeRequest{VolumeId: d.UUID, VolumePath: path,
		StagingTargetPath: staging, CapacityRange: &csi.CapacityRange{RequiredBytes: want}})
	return resp.GetCapacityBytes(), err
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// mountedAt returns the filesystem type mounted at path, "" if none.
func mountedAt(t *testing.T, path string) string {
	t.Helper()
	mounts, err := DefaultMountInfo.List()
	if err != nil {
		t.Fatal(err)
	}
	if m := mountTable(mounts).at(path); m != nil {
		return m.FsType
	}
	return ""
}

func blkidType(t *testing.T, dev string) string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}

func fsSize(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// canResizeExt4Online: EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE, which a
// privileged node plugin has but some sandboxes drop even for root.
func canResizeExt4Online(t *testing.T) bool {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// withoutExt4Resize checks that, lacking the capability, growing fails
// loudly (never a silent success), then skips the rest of the test.
func withoutExt4Resize(t *testing.T, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "resize2fs") {
		t.Fatalf("growing ext4 without CAP_SYS_RESOURCE: %v, want a resize2fs error", err)
	}
	t.Skip("ext4 online resize needs CAP_SYS_RESOURCE, missing here; checked that the failure is reported")
}

func gone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists (err=%v)", path, err)
	}
}
