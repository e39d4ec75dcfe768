//go:build guest

package guest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// serverB is the second guest's server: a volume moves to it from the
// local server's guest (A).
const serverB = "7c1e9a52-4d3b-4f6a-8e21-93b5c0d4a6f8"

// TestScenarios runs the volume life cycles that need a real guest kernel,
// on two guests (A, the local server, and B), data checked by sha256.
// Subtests share the guests and run in order; the crashes come last.
func TestScenarios(t *testing.T) {
	begin := time.Now()
	e := start(t, serverB)
	a, b := e.Server, serverB
	for _, id := range []string{a, b} {
		identity(t, e, id) // each node plugin reads its own server context
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs+" restage and move", func(t *testing.T) { restageAndMove(ctx, t, e, fs, a, b) })
	}
	t.Run("raw block", func(t *testing.T) { rawBlock(ctx, t, e, a, b) })
	t.Run("offline expansion", func(t *testing.T) { offlineExpansion(ctx, t, e, a) })
	t.Run("eight volumes", func(t *testing.T) { eightVolumes(ctx, t, e, a) })
	t.Run("no serial", func(t *testing.T) { noSerial(ctx, t, e, a) })
	t.Run("unplugged under the mount", func(t *testing.T) { unpluggedUnderMount(ctx, t, e, a) })
	t.Run("ext4 crash mid-write, A to B", func(t *testing.T) { crashMidWrite(ctx, t, e, "ext4", a, b) })
	t.Run("xfs crash mid-write, B to A", func(t *testing.T) {
		// A was killed above: start it again through the API.
		e.power(ctx, t, "start")
		e.waitStatus(t, "running")
		if err := e.Sim.GuestReadyOf(ctx, a); err != nil {
			t.Fatalf("A after start: %v", err)
		}
		crashMidWrite(ctx, t, e, "xfs", b, a)
	})

	if d := e.Sim.Drives(); len(d) != 0 && !t.Failed() {
		t.Errorf("the scenarios left %d drives behind", len(d))
	}
	figure(t, "scenarios (two guests), in all", time.Since(begin), "")
}

// restageAndMove: data written and synced on A survives unstage and
// restage on A, then the move to B (unpublish, detach, publish to B,
// stage there), byte for byte.
func restageAndMove(ctx context.Context, t *testing.T, e *env, fs, a, b string) {
	v := e.newVolume(ctx, t, "move-"+fs, gib, fs)
	v.up(ctx, t, a)
	want := e.writeFile(ctx, t, a, v.target+"/data", 16)
	v.nodeUnpublish(ctx, t)
	v.unstage(ctx, t)
	v.stage(ctx, t)
	v.nodePublish(ctx, t)
	if got := e.sum(ctx, t, a, v.target+"/data", 0); got != want {
		t.Fatalf("%s after restage on A: sha256 %s, want %s", fs, got, want)
	}
	v.down(ctx, t)
	v.up(ctx, t, b)
	if got := e.sum(ctx, t, b, v.target+"/data", 0); got != want {
		t.Fatalf("%s moved to B: sha256 %s, want %s", fs, got, want)
	}
	if got := e.sh(ctx, t, b, `findmnt -n -o FSTYPE "$1"`, v.target); got != fs {
		t.Errorf("B mounts %s at the target, want %s", got, fs)
	}
	v.down(ctx, t)
}

// rawBlock: bytes written through the published block device on A are
// read back identical through it, and through B's after the move.
func rawBlock(ctx context.Context, t *testing.T, e *env, a, b string) {
	const n = 8 << 20
	v := e.newVolume(ctx, t, "raw", gib, "")
	v.up(ctx, t, a)
	if kind := e.sh(ctx, t, a, `[ -b "$1" ] && echo block`, v.target); kind != "block" {
		t.Fatalf("the published target %s is not a block device", v.target)
	}
	want := e.writeFile(ctx, t, a, "/tmp/raw", n>>20)
	e.sh(ctx, t, a, `dd if=/tmp/raw of="$1" bs=1M 2>/dev/null && sync`, v.target)
	if got := e.sum(ctx, t, a, v.target, n); got != want {
		t.Fatalf("read back through the block device: sha256 %s, want %s", got, want)
	}
	v.down(ctx, t)
	v.up(ctx, t, b)
	if got := e.sum(ctx, t, b, v.target, n); got != want {
		t.Fatalf("read on B: sha256 %s, want %s", got, want)
	}
	v.down(ctx, t)
}

// offlineExpansion: CloudSigma resizes only a drive not mounted on a
// running server, so the volume is detached, expanded, attached again, and
// the node grows the file system in the guest; the data stays.
func offlineExpansion(ctx context.Context, t *testing.T, e *env, a string) {
	v := e.newVolume(ctx, t, "expand", gib, "ext4")
	v.up(ctx, t, a)
	want := e.writeFile(ctx, t, a, v.target+"/data", 8)
	v.down(ctx, t)
	r, err := e.ctrl().ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
		VolumeId: v.id, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: v.cap,
	})
	if err != nil {
		t.Fatalf("ControllerExpandVolume of the detached volume: %v", err)
	}
	if r.CapacityBytes < 2*gib || !r.NodeExpansionRequired {
		t.Fatalf("ControllerExpandVolume: %d bytes, node expansion %v; want >= 2 GiB and true", r.CapacityBytes, r.NodeExpansionRequired)
	}
	v.up(ctx, t, a)
	if _, err := v.node().NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{
		VolumeId: v.id, VolumePath: v.target, StagingTargetPath: v.staging,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: v.cap,
	}); err != nil {
		t.Fatalf("NodeExpandVolume: %v", err)
	}
	// df in the guest: the file system itself, not the driver's word.
	kib := e.sh(ctx, t, a, `df -k "$1" | awk 'NR==2 { print $2 }'`, v.target)
	var size int64
	if _, err := fmt.Sscan(kib, &size); err != nil || size*1024 < gib*3/2 {
		t.Fatalf("the file system in the guest has %s KiB after the expansion, want about 2 GiB", kib)
	}
	if got := e.sum(ctx, t, a, v.target+"/data", 0); got != want {
		t.Fatalf("after the expansion: sha256 %s, want %s", got, want)
	}
	v.down(ctx, t)
}

// eightVolumes: eight volumes attached to one guest at once, each staged on
// its own device; after unstaging all and staging them again in the
// reverse order, each file system still holds its own marker.
func eightVolumes(ctx context.Context, t *testing.T, e *env, a string) {
	vols := make([]*volume, 8)
	for i := range vols {
		vols[i] = e.newVolume(ctx, t, fmt.Sprintf("eight-%d", i), gib, "ext4")
	}
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(vols))
	for i, v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.ctrl().ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v.id, NodeId: a, VolumeCapability: v.cap})
			if err == nil {
				v.server, v.pub = a, r.PublishContext
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ControllerPublishVolume %s: %v", vols[i].name, err)
		}
	}
	for {
		have := e.serialsOn(t, a)
		missing := 0
		for _, v := range vols {
			if !contains(have, virtio.Serial(v.id)) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Since(begin) > opWait {
			t.Fatalf("%d of 8 disks not in the guest %s after publishing", missing, opWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	figure(t, "8 attaches at once until all 8 disks are in the guest", time.Since(begin), "concurrent ControllerPublishVolume")
	devs := map[string]string{}
	for _, v := range vols {
		v.stage(ctx, t)
		e.sh(ctx, t, a, `echo "$2" >"$1/marker" && sync`, v.staging, v.id)
		dev := e.sh(ctx, t, a, `findmnt -n -o SOURCE "$1"`, v.staging)
		if other, dup := devs[dev]; dup {
			t.Fatalf("%s and %s are both staged from %s", other, v.name, dev)
		}
		devs[dev] = v.name
	}
	for _, v := range vols {
		v.unstage(ctx, t)
	}
	for i := len(vols) - 1; i >= 0; i-- {
		v := vols[i]
		v.stage(ctx, t)
		if got := e.sh(ctx, t, a, `cat "$1/marker"`, v.staging); got != v.id {
			t.Fatalf("%s staged again holds the marker %q, want its own %s", v.name, got, v.id)
		}
	}
	for _, v := range vols {
		v.unstage(ctx, t)
		v.unpublish(ctx, t)
	}
}

// waitOut runs a script in a server's guest until it prints something, and
// returns that.
func (e *env) waitOut(ctx context.Context, t *testing.T, server, what, script string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(opWait)
	for {
		out, err := e.Sim.GuestRunOn(ctx, server, append([]string{"sh", "-c", script, "sh"}, args...)...)
		if s := strings.TrimSpace(out); err == nil && s != "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest of %s: waiting for %s: %q (%v)", server[:8], what, out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
