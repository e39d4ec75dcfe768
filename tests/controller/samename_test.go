package controller_test

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// A volume is deleted and created again by the same name from a snapshot of
// its former self (a CO that lets its users name volumes may do that). The clone
// inherits the old drive's record, which names that same volume with
// another source. The first create fails before it records the clone as
// its own (here a 503 on the update); the retry must finish that clone, not
// refuse it as a volume "with other properties" and leave it behind.
// Found by the chaos soak (tests/soak).
func TestRetriedRestoreIntoTheSourcesNameFinishesTheClone(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	old := create(t, c, "pvc-reused", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-reused", SourceVolumeId: old.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: old.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	snapID := snap.GetSnapshot().GetSnapshotId()
	retry(t, "snapshot ready", func() error { // the restore waits for it otherwise
		s, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{SnapshotId: snapID})
		if err == nil && !s.GetEntries()[0].GetSnapshot().GetReadyToUse() {
			return status.Error(codes.Unavailable, "not ready")
		}
		return err
	})

	e.Sim.InjectFault(cloudsim.Fault{Method: "PUT", PathPrefix: "/drives/", Status: 503, Count: 1})
	req := &csi.CreateVolumeRequest{Name: "pvc-reused", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeContentSource: snapshotSource(snapID)}
	if _, err := c.CreateVolume(ctxT(t), req); status.Code(err) != codes.Unavailable {
		t.Fatalf("the restore whose record was refused: %v, want Unavailable", err)
	}
	var vol *csi.Volume
	retry(t, "the retried restore", func() error {
		resp, err := c.CreateVolume(ctxT(t), req)
		vol = resp.GetVolume()
		return err
	})
	named := drivesNamed(e, "pvc-reused")
	if len(named) != 1 || named[0].UUID != vol.GetVolumeId() {
		t.Fatalf("drives named pvc-reused: %+v, volume %v", named, vol)
	}
	if got := named[0].Meta["csi_source"]; got != "snapshot:"+snapID {
		t.Fatalf("the restored volume records source %q, want snapshot:%s", got, snapID)
	}
	if !listVolumeIDs(t, c)[vol.GetVolumeId()] {
		t.Fatal("the restored volume is missing from ListVolumes")
	}
}
