//go:build guest

package guest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// volume is one CSI volume driven the way the sidecars and kubelet drive
// it: gRPC to the controller on the host and to the node plugin in the
// guest of the server it is published to.
type volume struct {
	e               *env
	id, name        string
	cap             *csi.VolumeCapability
	server          string // published to ("" = nowhere)
	pub             map[string]string
	staging, target string // paths in the guest
}

// newVolume creates a volume of size bytes: a file system of type fs, or
// a raw block volume when fs is "".
func (e *env) newVolume(ctx context.Context, t *testing.T, name string, size int64, fs string) *volume {
	t.Helper()
	mode := &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}
	vc := &csi.VolumeCapability{AccessMode: mode, AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}
	var vctx map[string]string
	if fs != "" {
		vc.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}}
		vctx = map[string]string{params.ParamFSType: fs}
	}
	r, err := e.ctrl().CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{vc}, Parameters: vctx,
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	v := &volume{e: e, id: r.Volume.VolumeId, name: name, cap: vc,
		staging: "/var/lib/csi/" + name + "/staging", target: "/var/lib/csi/" + name + "/target"}
	t.Cleanup(func() { v.cleanup() })
	return v
}

func (e *env) ctrl() csi.ControllerClient { return e.cc }

// opWait bounds one step of a scenario (TCG on a busy machine).
const opWait = 2 * time.Minute

func itoa(n int) string { return strconv.Itoa(n) }

// up publishes the volume to server, stages and publishes it there.
func (v *volume) up(ctx context.Context, t *testing.T, server string) {
	t.Helper()
	v.publish(ctx, t, server)
	v.stage(ctx, t)
	v.nodePublish(ctx, t)
}

// down undoes up: unpublish and unstage in the guest, then the detach.
func (v *volume) down(ctx context.Context, t *testing.T) {
	t.Helper()
	v.nodeUnpublish(ctx, t)
	v.unstage(ctx, t)
	v.unpublish(ctx, t)
}

// publish is ControllerPublishVolume: the server edit that hot-plugs the
// drive into the guest.
func (v *volume) publish(ctx context.Context, t *testing.T, server string) {
	t.Helper()
	r, err := v.e.ctrl().ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
		VolumeId: v.id, NodeId: server, VolumeCapability: v.cap,
	})
	if err != nil {
		t.Fatalf("ControllerPublishVolume %s to %s: %v", v.name, server, err)
	}
	v.server, v.pub = server, r.PublishContext
}

// unpublish is ControllerUnpublishVolume: it returns once the drive has
// left the server, i.e. once the guest let go of the disk.
func (v *volume) unpublish(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := v.e.ctrl().ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.id, NodeId: v.server}); err != nil {
		t.Fatalf("ControllerUnpublishVolume %s from %s: %v", v.name, v.server, err)
	}
	if contains(v.e.serialsOn(t, v.server), virtio.Serial(v.id)) {
		t.Fatalf("ControllerUnpublishVolume %s returned with the disk still in the guest", v.name)
	}
	v.server = ""
}

func (v *volume) node() csi.NodeClient { return v.e.nodeOf(v.server) }

func (v *volume) stage(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := v.tryStage(ctx); err != nil {
		t.Fatalf("NodeStageVolume %s on %s: %v", v.name, v.server, err)
	}
}

func (v *volume) tryStage(ctx context.Context) error {
	_, err := v.node().NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: v.id, PublishContext: v.pub, StagingTargetPath: v.staging, VolumeCapability: v.cap,
	})
	return err
}

func (v *volume) unstage(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := v.node().NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging}); err != nil {
		t.Fatalf("NodeUnstageVolume %s on %s: %v", v.name, v.server, err)
	}
}

func (v *volume) nodePublish(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := v.node().NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: v.id, PublishContext: v.pub, StagingTargetPath: v.staging, TargetPath: v.target, VolumeCapability: v.cap,
	}); err != nil {
		t.Fatalf("NodePublishVolume %s on %s: %v", v.name, v.server, err)
	}
}

func (v *volume) nodeUnpublish(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := v.node().NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
		t.Fatalf("NodeUnpublishVolume %s on %s: %v", v.name, v.server, err)
	}
}

// cleanup releases what a failed test left, best effort (a passing test
// has released it already: the calls are idempotent).
func (v *volume) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*opWait)
	defer cancel()
	if v.server != "" {
		if _, ok := v.e.nodes[v.server]; ok {
			_, _ = v.node().NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target})
			_, _ = v.node().NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging})
		}
		_, _ = v.e.ctrl().ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.id, NodeId: v.server})
	}
	_, _ = v.e.ctrl().DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.id})
}

// sh runs a shell script in a server's guest ($1... are args) and returns
// its output, trimmed; a failure ends the test.
func (e *env) sh(ctx context.Context, t *testing.T, server, script string, args ...string) string {
	t.Helper()
	out, err := e.Sim.GuestRunOn(ctx, server, append([]string{"sh", "-c", script, "sh"}, args...)...)
	if err != nil {
		t.Fatalf("guest of %s: %s: %v", server[:8], script, err)
	}
	return strings.TrimSpace(out)
}

// writeFile writes mib MiB of random data to path in the guest, syncs and
// returns its sha256.
func (e *env) writeFile(ctx context.Context, t *testing.T, server, path string, mib int) string {
	t.Helper()
	return e.sh(ctx, t, server, `dd if=/dev/urandom of="$1" bs=1M count="$2" 2>/dev/null && sync && sha256sum "$1" | cut -d' ' -f1`, path, itoa(mib))
}

// sum is the sha256 of a file in the guest (of its first n bytes if n > 0).
func (e *env) sum(ctx context.Context, t *testing.T, server, path string, n int64) string {
	t.Helper()
	if n > 0 {
		return e.sh(ctx, t, server, `head -c "$2" "$1" | sha256sum | cut -d' ' -f1`, path, itoa(int(n)))
	}
	return e.sh(ctx, t, server, `sha256sum "$1" | cut -d' ' -f1`, path)
}
