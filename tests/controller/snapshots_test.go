package controller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// A snapshot restores at the size its drive had when it was taken, not the
// drive's current size.
func TestRestoreSizeIsTheSizeWhenTaken(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-grows", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-small", SourceVolumeId: vol.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()})
	if err != nil || len(list.GetEntries()) != 1 || list.GetEntries()[0].GetSnapshot().GetSizeBytes() != gib {
		t.Fatalf("snapshot size after the drive grew: %v %v, want %d", list, err, gib)
	}
	resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-restore-2g",
		CapacityRange:       &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: 2 * gib},
		VolumeCapabilities:  []*csi.VolumeCapability{mountCap},
		VolumeContentSource: snapshotSource(snap.GetSnapshot().GetSnapshotId())})
	if err != nil || resp.GetVolume().GetCapacityBytes() != 2*gib {
		t.Fatalf("restore a 1 GiB snapshot into 2 GiB: %v %v", resp, err)
	}
}

// Snapshot limits from capabilities (90 per drive) are "not enough
// resources" for CreateSnapshot, not a permission problem.
func TestSnapshotLimitIsResourceExhausted(t *testing.T) {
	e := harness.Start(t, harness.Options{Delays: &harness.DefaultDelays})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-many-snaps", gib, nil)
	for i := 0; ; i++ {
		_, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: fmt.Sprintf("snap-%d", i), SourceVolumeId: vol.GetVolumeId()})
		if err == nil {
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || i != 90 {
			t.Fatalf("snapshot %d: %v, want ResourceExhausted at the 91st", i, err)
		}
		break
	}
}

// A snapshot being taken is an operation on its volume: deleting the volume
// meanwhile is refused with Aborted rather than racing the snapshot.
func TestDeleteVolumeDuringCreateSnapshotIsAborted(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-snap-race", gib, nil)
	e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/snapshots/", Latency: time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-race", SourceVolumeId: vol.GetVolumeId()})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	_, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("delete during snapshot: %v, want Aborted", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Sim.Drive(vol.GetVolumeId()); !ok {
		t.Fatal("volume deleted under its snapshot")
	}
}
