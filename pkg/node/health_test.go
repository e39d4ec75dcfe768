package node

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// Health on a fake node: each path is checked against the volume's device.
func TestHealthChecksPaths(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(n *fakeNode, staging, target string, a, b uint64)
		reasons []string // sorted; none means healthy
	}{
		{"staged and published", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, a, "ext4", false)
		}, nil},
		{"publish path holds another volume", func(n *fakeNode, s, tg string, a, b uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, b, "ext4", false)
		}, []string{"WrongDevice"}},
		{"staging path holds another volume", func(n *fakeNode, s, tg string, a, b uint64) {
			n.mountFS(s, b, "ext4", false)
			n.mountFS(tg, a, "ext4", false)
		}, []string{"WrongDevice"}},
		{"publish path missing", func(n *fakeNode, s, _ string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, []string{"NotPublished"}},
		{"publish path not mounted", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mkdir(tg)
		}, []string{"NotPublished"}},
		{"publish mount corrupted", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, a, "ext4", false)
			n.corrupt(tg)
		}, []string{"CorruptedMount"}},
		{"raw block published", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mkdir(s)
			n.mountNode(tg, n.devs[volA], a, false)
		}, nil},
		{"raw block publish of another device", func(n *fakeNode, s, tg string, _, b uint64) {
			n.mkdir(s)
			n.mountNode(tg, n.devs[volB], b, false)
		}, []string{"WrongDevice"}},
		{"device gone", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, a, "ext4", false)
			n.unplug(volA, a)
		}, []string{"DeviceNotFound"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			_, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			staging, target := n.path("staging"), n.path("pods", "a", "vol")
			tc.setup(n, staging, target, a, b)

			resp, err := n.srv.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{
				VolumeId: volA, StagingTargetPath: staging, VolumePublishPath: target})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range resp.GetVolumeHealth().GetHealthStatuses() {
				if e.Status != csi.VolumeHealthErrorType_INACCESSIBLE {
					t.Errorf("entry %v is not INACCESSIBLE", e)
				}
				got = append(got, e.Reason)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.reasons) {
				t.Errorf("reasons %v, want %v (%v)", got, tc.reasons, resp.GetVolumeHealth().GetHealthStatuses())
			}
		})
	}
}

// Stats, health, publish, expand and unstage look once for the volume's
// device (Finder.FindNow): they never wait for it and never ask udev about
// any device, however often the CO calls them. Here the device is gone.
func TestQuickLookupsNeverTriggerUdev(t *testing.T) {
	n := newFakeNode(t)
	n.mkdir(filepath.Join(n.sys, "block"))
	var udev []string
	n.withFinder(&device.VirtioFinder{ByIDDir: n.mkdir(n.path("by-id")), SysDir: n.sys, DevDir: n.mkdir(n.path("devices")),
		Trigger: func(_ context.Context, name string) error { udev = append(udev, name); return nil }})
	rdev := unix.Mkdev(8, 16) // not in sysfs: unplugged
	staging, target := n.path("staging"), n.path("target")
	n.mountFS(staging, rdev, "ext4", false)
	n.mountFS(target, rdev, "ext4", false)
	ctx := context.Background()
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"NodeGetVolumeStats", func() error {
			_, err := n.srv.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: volA, VolumePath: target})
			return err
		}},
		{"NodeGetVolumeHealth", func() error {
			_, err := n.srv.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: volA, StagingTargetPath: staging, VolumePublishPath: target})
			return err
		}},
		{"NodePublishVolume", func() error {
			_, err := n.srv.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volA, StagingTargetPath: staging,
				TargetPath: n.path("target2"), VolumeCapability: mountCap("ext4", snw)})
			return err
		}},
		{"NodeExpandVolume", func() error {
			_, err := n.srv.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volA, VolumePath: target})
			return err
		}},
		{"NodeUnstageVolume", func() error {
			_, err := n.srv.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: volA, StagingTargetPath: staging})
			return err
		}},
	} {
		start := time.Now()
		err := call.run()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %s (%v): a quick lookup waited for the device", call.name, took, err)
		}
		if len(udev) != 0 {
			t.Errorf("%s triggered udev for %v", call.name, udev)
			udev = nil
		}
	}
}
