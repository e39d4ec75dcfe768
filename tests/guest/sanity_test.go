//go:build guest

package guest

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

const gib = 1 << 30

// guestSanityConfig is csi-sanity's configuration with the controller on
// the host and the node plugin in e's guest: mount and staging paths are
// paths in the guest, which sanity makes, checks and removes through the
// guest's agent.
func guestSanityConfig(e *env) sanity.TestConfig {
	guestCmd := func(argv ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return e.Sim.GuestRun(ctx, argv...)
	}
	mkdir := func(p string) (string, error) { _, err := guestCmd("mkdir", "-p", p); return p, err }
	remove := func(p string) error { _, err := guestCmd("rm", "-rf", p); return err }
	cfg := sanity.NewTestConfig()
	cfg.Address = e.Sim.GuestCSIEndpoint()
	cfg.ControllerAddress = e.Endpoint
	cfg.TargetPath = "/var/lib/csi-sanity/target"
	cfg.StagingPath = "/var/lib/csi-sanity/staging"
	cfg.CreateTargetDir, cfg.CreateStagingDir = mkdir, mkdir
	cfg.RemoveTargetPath, cfg.RemoveStagingPath = remove, remove
	cfg.CheckPath = func(p string) (sanity.PathKind, error) {
		out, err := guestCmd("sh", "-c", `if [ ! -e "$1" ]; then echo not_found; elif [ -d "$1" ]; then echo directory; elif [ -f "$1" ]; then echo file; else echo other; fi`, "check", p)
		if err != nil {
			return "", err
		}
		return sanity.IsPathKind(strings.TrimSpace(out))
	}
	cfg.TestVolumeSize = gib
	cfg.TestVolumeExpandSize = 2 * gib
	cfg.TestVolumeParameters = map[string]string{params.ParamFSType: "ext4"}
	return cfg
}

var sanitySerial = flag.String("sanity-serial", cloudsim.SerialVirtio,
	"TestSanity: the serial form of the guest's disks: virtio (the UUID's, where serials identify drives), other or none (evidence: docs/identity.md)")

// TestSanity runs csi-sanity's whole suite with the controller on the host
// and the node plugin in the guest (guestSanityConfig). Ginkgo runs one
// suite per process, so each serial form (-sanity-serial) is a process of
// its own; make e2e-guest runs all three.
func TestSanity(t *testing.T) {
	form := *sanitySerial
	var e *env
	cfg := sanity.TestConfig{}
	if form == cloudsim.SerialVirtio {
		e = start(t)
		identity(t, e, e.Server)
		stageFigures(t, e)
		cfg = guestSanityConfig(e)
		cfg.TestNodeVolumeAttachLimit = true
	} else {
		// The attach-limit spec publishes blank drives of one size
		// without staging them, which the attach window holds by design
		// (docs/identity.md): it runs where serials identify drives.
		e = startSerial(t, form)
		identity(t, e, e.Server)
		cfg = guestSanityConfig(e)
	}
	cfg.IdempotentCount = 3
	begin := time.Now()
	sanity.Test(t, cfg)
	figure(t, "csi-sanity suite, disk serials: "+form, time.Since(begin), "controller on the host, node in the guest")

	if d := e.Sim.Drives(); len(d) != 0 {
		t.Errorf("sanity left %d drives behind", len(d))
	}
	if s := e.Sim.Snapshots(); len(s) != 0 {
		t.Errorf("sanity left %d snapshots behind", len(s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := e.Sim.GuestRun(ctx, "sh", "-c", "ls /sys/block | grep '^vd' || true"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("disks left in the guest: %q %v", out, err)
	}
}

// identity checks what a guest's node plugin says about itself: the node
// ID is its server's UUID, read from the server context on the guest's
// ttyS1. The location is the --location flag (see nodeArgs).
func identity(t *testing.T, e *env, server string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := e.nodeOf(server).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatalf("NodeGetInfo through the guest's port: %v", err)
	}
	if info.NodeId != server {
		t.Fatalf("node ID %q, want the server UUID %s (from the server context)", info.NodeId, server)
	}
	if loc := info.AccessibleTopology.GetSegments()["topology.csi.cloudsigma.com/location"]; loc != harness.Location {
		t.Fatalf("topology %v, want location %s", info.AccessibleTopology, harness.Location)
	}
}

// stageFigures times an attach (publish until the disk is in the guest
// with its serial), the first NodeStage after boot (the node detects its
// identity mode then), and NodeStage against a plain mkfs.ext4 + mount of
// another fresh drive of the same size in the guest, four rounds in
// alternating order.
func stageFigures(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ctrl := csi.NewControllerClient(e.Conn())
	node := e.nodeClient()
	mount := ext4Writer
	const rounds = 4
	vols := make([]string, 1+2*rounds)
	pubs := make([]map[string]string, len(vols))
	for i := range vols {
		v, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: fmt.Sprintf("figures-%d", i), CapacityRange: &csi.CapacityRange{RequiredBytes: gib},
			VolumeCapabilities: []*csi.VolumeCapability{mount},
		})
		if err != nil {
			t.Fatal(err)
		}
		vols[i] = v.Volume.VolumeId
		begin := time.Now()
		p, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
			VolumeId: vols[i], NodeId: e.Server, VolumeCapability: mount,
		})
		if err != nil {
			t.Fatal(err)
		}
		published := time.Since(begin)
		pubs[i] = p.PublishContext
		serial := virtio.Serial(vols[i])
		for !contains(e.guestSerials(t), serial) {
			if time.Since(begin) > time.Minute {
				t.Fatalf("drive %s not in the guest a minute after publish", vols[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
		if i == 0 {
			figure(t, "attach (publish to disk visible in the guest)", time.Since(begin), fmt.Sprintf("ControllerPublishVolume itself %s", published.Round(time.Millisecond)))
		}
	}
	staging := func(i int) string { return fmt.Sprintf("/var/lib/figures/staging-%d", i) }
	stage := func(i int) time.Duration {
		begin := time.Now()
		if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
			VolumeId: vols[i], PublishContext: pubs[i], StagingTargetPath: staging(i), VolumeCapability: mount,
		}); err != nil {
			t.Fatalf("NodeStageVolume: %v", err)
		}
		return time.Since(begin)
	}
	raw := func(i int) time.Duration {
		begin := time.Now()
		if _, err := e.Sim.GuestRun(ctx, "sh", "-c", "mkfs.ext4 -q -F -m0 /dev/disk/by-id/$1 && mkdir -p $2 && mount /dev/disk/by-id/$1 $2",
			"plain", virtio.ByIDName(vols[i]), staging(i)); err != nil {
			t.Fatalf("plain mkfs + mount: %v", err)
		}
		return time.Since(begin)
	}
	figure(t, "first NodeStage after boot (identity mode detected)", stage(0), "blank 1 GiB drive: find, mkfs, mount")
	var staged, plain time.Duration
	for r := range rounds {
		a, b := 1+2*r, 2+2*r
		if r%2 == 0 {
			staged += stage(a)
			plain += raw(b)
		} else {
			plain += raw(b)
			staged += stage(a)
		}
	}
	staged, plain = staged/rounds, plain/rounds
	figure(t, "NodeStage of a blank 1 GiB drive (find, mkfs, mount)", staged, fmt.Sprintf("%.2fx plain (goal 1.1x); mean of %d", float64(staged)/float64(plain), rounds))
	figure(t, "plain mkfs.ext4 -q + mount, a drive like it", plain, fmt.Sprintf("by hand in the guest; mean of %d", rounds))
	for i := range vols {
		if i > 0 && i%2 == 0 {
			if _, err := e.Sim.GuestRun(ctx, "umount", staging(i)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vols[i], StagingTargetPath: staging(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vols {
		begin := time.Now()
		if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v, NodeId: e.Server}); err != nil {
			t.Fatal(err)
		}
		for contains(e.guestSerials(t), virtio.Serial(v)) {
			time.Sleep(20 * time.Millisecond)
		}
		if v == vols[0] {
			figure(t, "detach (unpublish to disk gone from the guest)", time.Since(begin), "")
		}
		if _, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v}); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
