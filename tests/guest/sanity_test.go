//go:build guest

package guest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

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

// TestSanity runs csi-sanity's whole suite with the controller on the host
// and the node plugin in the guest (guestSanityConfig).
func TestSanity(t *testing.T) {
	e := start(t)
	identity(t, e, e.Server)
	stageFigures(t, e)

	cfg := guestSanityConfig(e)
	cfg.TestNodeVolumeAttachLimit = true
	cfg.IdempotentCount = 3
	begin := time.Now()
	sanity.Test(t, cfg)
	figure(t, "csi-sanity suite", time.Since(begin), "controller on the host, node in the guest")

	if d := e.Sim.Drives(); len(d) != 0 {
		t.Errorf("sanity left %d drives behind", len(d))
	}
	if s := e.Sim.Snapshots(); len(s) != 0 {
		t.Errorf("sanity left %d snapshots behind", len(s))
	}
	if got := e.guestSerials(t); len(got) != 0 {
		t.Errorf("disks left in the guest: %v", got)
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
// with its serial) and NodeStage against a plain mkfs.ext4 + mount of a
// second drive in the guest.
func stageFigures(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ctrl := csi.NewControllerClient(e.Conn())
	node := e.nodeClient()
	mount := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	vols := make([]string, 2)
	pubs := make([]map[string]string, 2)
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
	staging := "/var/lib/figures/staging"
	begin := time.Now()
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: vols[0], PublishContext: pubs[0], StagingTargetPath: staging, VolumeCapability: mount,
	}); err != nil {
		t.Fatalf("NodeStageVolume: %v", err)
	}
	figure(t, "NodeStage of a blank 1 GiB drive (find, mkfs, mount)", time.Since(begin), "")
	begin = time.Now()
	if _, err := e.Sim.GuestRun(ctx, "sh", "-c", "mkfs.ext4 -q /dev/disk/by-id/$1 && mkdir -p /mnt/plain && mount /dev/disk/by-id/$1 /mnt/plain",
		"plain", virtio.ByIDName(vols[1])); err != nil {
		t.Fatalf("plain mkfs + mount: %v", err)
	}
	figure(t, "plain mkfs.ext4 + mount of the same size", time.Since(begin), "by hand in the guest")
	if _, err := e.Sim.GuestRun(ctx, "umount", "/mnt/plain"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vols[0], StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
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
