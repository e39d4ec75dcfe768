package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// waitGone waits until the simulator no longer holds the drive.
func waitGone(t *testing.T, e *harness.Env, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, ok := e.Sim.Drive(id); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("drive %s still exists after %s", id, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Deleting a volume that has snapshots succeeds and keeps the snapshots: the
// drive is retired (renamed, hidden, treated as deleted) until its last
// snapshot is deleted, and restores from the snapshots keep working.
func TestDeleteVolumeWithSnapshotsRetiresTheDrive(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-with-snap", gib, nil)
	id := vol.GetVolumeId()
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-keep", SourceVolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	snapID := snap.GetSnapshot().GetSnapshotId()
	for i := range 2 { // the second call is a retry: still OK
		if _, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("delete %d of a volume with a snapshot: %v", i+1, err)
		}
	}
	d, ok := e.Sim.Drive(id)
	if !ok {
		t.Fatal("the drive was deleted, and CloudSigma would have deleted its snapshot with it")
	}
	if !strings.HasPrefix(d.Name, "csi-retired-") || d.Meta[controller.MetaRetired] == "" {
		t.Errorf("retired drive is named %q with meta %v; want a csi-retired- name and %s", d.Name, d.Meta, controller.MetaRetired)
	}
	if ids := listVolumeIDs(t, c); ids[id] {
		t.Error("ListVolumes still lists the deleted volume")
	}
	if _, err := c.ControllerGetVolume(ctxT(t), &csi.ControllerGetVolumeRequest{VolumeId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("ControllerGetVolume of the deleted volume: %v, want NotFound", err)
	}
	if err := publishTo(t, c, id, e.Server); status.Code(err) != codes.NotFound {
		t.Errorf("publishing the deleted volume: %v, want NotFound", err)
	}
	// The name is free again: a new request by it is a new volume.
	again := create(t, c, "pvc-with-snap", gib, nil)
	if again.GetVolumeId() == id {
		t.Fatal("CreateVolume by the old name returned the retired drive")
	}
	restored := create(t, c, "pvc-restored", gib, snapshotSource(snapID))
	if restored.GetVolumeId() == "" {
		t.Fatal("restore from the retired drive's snapshot failed")
	}
	list, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{SnapshotId: snapID})
	if err != nil || len(list.GetEntries()) != 1 || list.GetEntries()[0].GetSnapshot().GetSourceVolumeId() != id {
		t.Fatalf("snapshot after its volume was deleted: %v %v", list, err)
	}

	// The last snapshot goes, and the retired drive with it.
	retry(t, "delete snapshot", func() error {
		_, err := c.DeleteSnapshot(ctxT(t), &csi.DeleteSnapshotRequest{SnapshotId: snapID})
		return err
	})
	waitGone(t, e, id, 5*time.Second)
	if _, ok := e.Sim.Drive(again.GetVolumeId()); !ok {
		t.Fatal("the new volume by the same name was deleted too")
	}
}

// A retired drive whose last snapshot went without DeleteSnapshot (deleted
// by hand, or the controller crashed in between) is removed by the sweep.
func TestSweepDeletesRetiredDrivesWithoutSnapshots(t *testing.T) {
	e := harness.Start(t, harness.Options{SweepEvery: 100 * time.Millisecond})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-swept", gib, nil)
	kept := create(t, c, "pvc-kept", gib, nil)
	var snaps []string
	for _, v := range []*csi.Volume{vol, kept} {
		s, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-" + v.GetVolumeId(), SourceVolumeId: v.GetVolumeId()})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s.GetSnapshot().GetSnapshotId())
		if _, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Client.DeleteSnapshot(ctxT(t), snaps[0]); err != nil {
		t.Fatal(err)
	}
	waitGone(t, e, vol.GetVolumeId(), 5*time.Second)
	time.Sleep(300 * time.Millisecond) // a few more sweeps
	if _, ok := e.Sim.Drive(kept.GetVolumeId()); !ok {
		t.Fatal("the sweep deleted a retired drive that still has a snapshot")
	}
}
