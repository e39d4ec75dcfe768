package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/internal/fscheck"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// volume is one PVC's journey through the driver.
type volume struct {
	id, staging, target string
	publishCtx          map[string]string
	cap                 *csi.VolumeCapability
}

func (d *demo) lifeCycle(fsType string) error {
	cap := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	a := &volume{staging: filepath.Join(d.work, "staging-a"), target: filepath.Join(d.work, "pod-a", "mount"), cap: cap}
	b := &volume{staging: filepath.Join(d.work, "staging-b"), target: filepath.Join(d.work, "pod-b", "mount"), cap: cap}
	payload := randomBytes(4 << 20)
	var snapID string

	steps := []struct {
		what string
		f    func(ctx context.Context) (string, error)
	}{
		{"CreateVolume a (1 GiB)", func(ctx context.Context) (string, error) { return d.create(ctx, a, "pvc-demo-a", gib, nil) }},
		{"ControllerPublishVolume a (hot-plug, virtio)", func(ctx context.Context) (string, error) { return d.attach(ctx, a) }},
		{"NodeStageVolume a (mkfs." + fsType + ", mount)", func(ctx context.Context) (string, error) { return d.stage(ctx, a) }},
		{"NodePublishVolume a (bind mount into the pod)", func(ctx context.Context) (string, error) { return d.publish(ctx, a) }},
		{"write a 4 MiB file into the pod's volume", func(ctx context.Context) (string, error) {
			return "sha256 " + sum(payload), fscheck.WriteSynced(filepath.Join(a.target, "data.bin"), payload)
		}},
		{"CreateSnapshot of a, wait until ready", func(ctx context.Context) (string, error) {
			var err error
			snapID, err = d.snapshot(ctx, a)
			return snapID, err
		}},
		{"CreateVolume b from the snapshot (2 GiB)", func(ctx context.Context) (string, error) {
			return d.create(ctx, b, "pvc-demo-b", 2*gib, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
				Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snapID}}})
		}},
		{"ControllerPublishVolume b", func(ctx context.Context) (string, error) { return d.attach(ctx, b) }},
		{"NodeStageVolume b (no mkfs; grows the filesystem)", func(ctx context.Context) (string, error) { return d.stage(ctx, b) }},
		{"NodePublishVolume b", func(ctx context.Context) (string, error) { return d.publish(ctx, b) }},
		{"read the file back from b: same bytes, grown fs", func(ctx context.Context) (string, error) {
			got, err := os.ReadFile(filepath.Join(b.target, "data.bin"))
			if err != nil {
				return "", err
			}
			if !bytes.Equal(got, payload) {
				return "", fmt.Errorf("restored file differs: sha256 %s, wrote %s", sum(got), sum(payload))
			}
			size, err := fscheck.Size(b.target)
			if err != nil || size < gib+gib/2 {
				return "", fmt.Errorf("restored filesystem is %d bytes (%v), want about 2 GiB", size, err)
			}
			return fmt.Sprintf("sha256 %s, df %d MiB", sum(got), size>>20), nil
		}},
		{"take a off the node (unpublish, unstage, detach)", func(ctx context.Context) (string, error) { return d.takeOff(ctx, a) }},
		{"ControllerExpandVolume a to 3 GiB (offline)", func(ctx context.Context) (string, error) {
			resp, err := d.ctrl.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: a.id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}, VolumeCapability: a.cap})
			return fmt.Sprintf("%d MiB, node expansion %v", resp.GetCapacityBytes()>>20, resp.GetNodeExpansionRequired()), err
		}},
		{"attach, stage, NodeExpandVolume, publish a again", func(ctx context.Context) (string, error) {
			for _, f := range []func(context.Context, *volume) (string, error){d.attach, d.stage, d.expand, d.publish} {
				if _, err := f(ctx, a); err != nil {
					return "", err
				}
			}
			size, err := fscheck.Size(a.target)
			if err != nil || size < 2*gib+gib/2 {
				return "", fmt.Errorf("expanded filesystem is %d bytes (%v), want about 3 GiB", size, err)
			}
			got, err := os.ReadFile(filepath.Join(a.target, "data.bin"))
			if err != nil || !bytes.Equal(got, payload) {
				return "", fmt.Errorf("file on a changed after expansion (%v)", err)
			}
			return fmt.Sprintf("df %d MiB, file intact", size>>20), nil
		}},
		{"take a and b off the node", func(ctx context.Context) (string, error) {
			if _, err := d.takeOff(ctx, a); err != nil {
				return "", err
			}
			return d.takeOff(ctx, b)
		}},
		{"DeleteSnapshot, DeleteVolume a and b", func(ctx context.Context) (string, error) {
			if _, err := d.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snapID}); err != nil {
				return "", err
			}
			for _, v := range []*volume{a, b} {
				if _, err := d.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.id}); err != nil {
					return "", err
				}
			}
			return "", nil
		}},
	}
	steps = append(steps, struct {
		what string
		f    func(ctx context.Context) (string, error)
	}{"no drives or snapshots left in the cloud", d.checkCloud})
	for _, s := range steps {
		if err := d.do(s.what, s.f); err != nil {
			d.cleanUp(snapID, a, b)
			return err
		}
	}
	return nil
}

// cleanUp undoes what a failed run left, best effort, so that a failure
// does not also leave mounts, loop devices or drives on the machine.
func (d *demo) cleanUp(snapID string, vols ...*volume) {
	fmt.Println("cleaning up after the failure...")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, v := range vols {
		if v.id == "" {
			continue
		}
		if _, err := d.takeOff(ctx, v); err != nil {
			fmt.Printf("  taking %s off the node: %v\n", v.id, err)
		}
	}
	if snapID != "" {
		if _, err := d.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snapID}); err != nil {
			fmt.Printf("  deleting snapshot %s: %v\n", snapID, err)
		}
	}
	for _, v := range vols {
		if v.id == "" {
			continue
		}
		if _, err := d.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.id}); err != nil {
			fmt.Printf("  deleting volume %s: %v\n", v.id, err)
		}
	}
}

func (d *demo) checkCloud(ctx context.Context) (string, error) {
	drives, err := d.api.ListDrives(ctx, cloudsigma.Filter{})
	if err != nil {
		return "", err
	}
	snaps, err := d.api.ListSnapshots(ctx, cloudsigma.Filter{})
	if err != nil {
		return "", err
	}
	if len(drives)+len(snaps) > 0 {
		return "", fmt.Errorf("%d drives and %d snapshots left", len(drives), len(snaps))
	}
	return "0 drives, 0 snapshots", nil
}

func (d *demo) create(ctx context.Context, v *volume, name string, size int64, src *csi.VolumeContentSource) (string, error) {
	resp, err := d.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size}, VolumeCapabilities: []*csi.VolumeCapability{v.cap},
		VolumeContentSource: src})
	if err != nil {
		return "", err
	}
	v.id = resp.GetVolume().GetVolumeId()
	return fmt.Sprintf("drive %s, %d MiB", v.id, resp.GetVolume().GetCapacityBytes()>>20), nil
}

func (d *demo) attach(ctx context.Context, v *volume) (string, error) {
	resp, err := d.ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v.id, NodeId: server, VolumeCapability: v.cap})
	v.publishCtx = resp.GetPublishContext()
	return fmt.Sprintf("publish_context %v", v.publishCtx), err
}

func (d *demo) stage(ctx context.Context, v *volume) (string, error) {
	_, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.id, PublishContext: v.publishCtx,
		StagingTargetPath: v.staging, VolumeCapability: v.cap})
	return v.staging, err
}

func (d *demo) publish(ctx context.Context, v *volume) (string, error) {
	_, err := d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.id, PublishContext: v.publishCtx,
		StagingTargetPath: v.staging, TargetPath: v.target, VolumeCapability: v.cap})
	return v.target, err
}

func (d *demo) expand(ctx context.Context, v *volume) (string, error) {
	resp, err := d.node.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: v.id, VolumePath: v.staging,
		StagingTargetPath: v.staging, VolumeCapability: v.cap})
	return fmt.Sprintf("%d MiB", resp.GetCapacityBytes()>>20), err
}

func (d *demo) snapshot(ctx context.Context, v *volume) (string, error) {
	resp, err := d.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snapshot-demo", SourceVolumeId: v.id})
	if err != nil {
		return "", err
	}
	id := resp.GetSnapshot().GetSnapshotId()
	_, err = d.api.WaitSnapshot(ctx, id, cloudsigma.WaitOptions{}, cloudsigma.StatusAvailable)
	return id, err
}

func (d *demo) takeOff(ctx context.Context, v *volume) (string, error) {
	if _, err := d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
		return "", err
	}
	if _, err := d.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging}); err != nil {
		return "", err
	}
	_, err := d.ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.id, NodeId: server})
	return "", err
}

// checkLeaks looks for anything the run left behind: drives and snapshots
// in the cloud, loop devices over the simulator's files, mounts under the
// work directory.
func (d *demo) checkLeaks() error {
	var leaks []string
	out, err := exec.Command("losetup", "-a").Output()
	if err != nil {
		return fmt.Errorf("losetup -a: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, d.dataDir) {
			leaks = append(leaks, "loop device: "+line)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, d.work) {
			leaks = append(leaks, "mount: "+line)
		}
	}
	entries, _ := os.ReadDir(d.devDir)
	for _, e := range entries {
		leaks = append(leaks, "device link: "+e.Name())
	}
	fmt.Printf("checked: loop devices over %s, mounts under %s, links in %s\n", d.dataDir, d.work, d.devDir)
	if len(leaks) > 0 {
		return fmt.Errorf("leaked:\n  %s", strings.Join(leaks, "\n  "))
	}
	return nil
}
