package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// handMadeDrive creates a drive through the API, as another cluster or an
// operator would, and waits until it settles.
func handMadeDrive(t *testing.T, e *harness.Env, name string, meta map[string]string) *cloudsigma.Drive {
	t.Helper()
	ctx := ctxT(t)
	d, err := e.Client.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: gib, StorageType: "dssd", Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	d, err = e.Client.WaitDrive(ctx, d.UUID, cloudsigma.WaitOptions{MinInterval: 20 * time.Millisecond}, cloudsigma.DriveSettled...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// attachByHand puts a drive on a server the way the other cluster's driver
// would: one PUT of the server's drives list.
func attachByHand(t *testing.T, e *harness.Env, server, drive string) {
	t.Helper()
	s, err := e.Client.GetServer(ctxT(t), server)
	if err != nil {
		t.Fatal(err)
	}
	drives := append(s.Drives, cloudsigma.ServerDrive{DevChannel: "0:1", Device: "virtio", Drive: cloudsigma.Ref{UUID: drive}})
	if _, err := e.Client.UpdateServerDrives(ctxT(t), s, drives); err != nil {
		t.Fatal(err)
	}
}

// A drive whose ownership record names another cluster survives every
// controller call aimed at it: each is refused with FailedPrecondition
// naming the cluster and the drive, before anything changes.
func TestAnotherClustersDriveIsUntouchable(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	theirs := handMadeDrive(t, e, "pvc-of-cluster-b", map[string]string{
		controller.MetaDriver: params.DriverName, controller.MetaCluster: "cluster-b", controller.MetaName: "pvc-of-cluster-b",
	})
	// It sits on cluster B's running server.
	theirServer := e.Sim.CreateServer("cluster-b-node", true)
	attachByHand(t, e, theirServer, theirs.UUID)
	snap, err := e.Client.CreateSnapshot(ctxT(t), cloudsigma.SnapshotCreate{Drive: theirs.UUID, Name: "snap-of-cluster-b",
		Meta: map[string]string{controller.MetaDriver: params.DriverName, controller.MetaCluster: "cluster-b"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Sim.ResetCalls()

	calls := map[string]func(ctx context.Context) error{
		"DeleteVolume": func(ctx context.Context) error {
			_, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: theirs.UUID})
			return err
		},
		"ControllerPublishVolume": func(ctx context.Context) error {
			_, err := c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: theirs.UUID, NodeId: e.Server, VolumeCapability: mountCap})
			return err
		},
		"ControllerUnpublishVolume at their node": func(ctx context.Context) error {
			_, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: theirs.UUID, NodeId: theirServer})
			return err
		},
		"ControllerUnpublishVolume from every node": func(ctx context.Context) error {
			_, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: theirs.UUID})
			return err
		},
		"ControllerExpandVolume": func(ctx context.Context) error {
			_, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: theirs.UUID,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: mountCap})
			return err
		},
		"CreateSnapshot": func(ctx context.Context) error {
			_, err := c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "our-snap-of-their-drive", SourceVolumeId: theirs.UUID})
			return err
		},
		"DeleteSnapshot": func(ctx context.Context) error {
			_, err := c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.UUID})
			return err
		},
	}
	for name, call := range calls {
		err := call(ctxT(t))
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s on cluster-b's drive: %v, want FailedPrecondition", name, err)
			continue
		}
		id := theirs.UUID
		if name == "DeleteSnapshot" {
			id = snap.UUID
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, `"cluster-b"`) || !strings.Contains(msg, id) {
			t.Errorf("%s: message %q does not name the owning cluster and the object", name, msg)
		}
	}
	for _, call := range e.Sim.Calls() {
		if call.Method != "GET" {
			t.Errorf("a refused call changed something: %s %s", call.Method, call.Path)
		}
	}
	d, ok := e.Sim.Drive(theirs.UUID)
	if !ok {
		t.Fatal("cluster-b's drive is gone")
	}
	if int64(d.Size) != gib || len(d.MountedOn) != 1 || d.MountedOn[0] != theirServer {
		t.Errorf("cluster-b's drive changed: size %d, mounted on %v", int64(d.Size), d.MountedOn)
	}
	if n := len(e.Sim.Snapshots()); n != 1 {
		t.Errorf("%d snapshots, want cluster-b's one", n)
	}
}

// A drive without this driver's record (a static PV, the alpha driver's
// volume) stays usable: attach, detach, expand, snapshot and delete.
func TestDriveWithoutRecordIsUsable(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	static := handMadeDrive(t, e, "static-pv", map[string]string{"owner": "ops"})
	if _, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{VolumeId: static.UUID, NodeId: e.Server, VolumeCapability: mountCap}); err != nil {
		t.Fatalf("publish a drive without a record: %v", err)
	}
	if _, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: static.UUID, NodeId: e.Server}); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	if _, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: static.UUID,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: mountCap}); err != nil {
		t.Fatalf("expand: %v", err)
	}
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-of-static", SourceVolumeId: static.UUID})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	retry(t, "delete snapshot", func() error {
		_, err := c.DeleteSnapshot(ctxT(t), &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()})
		return err
	})
	if _, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: static.UUID}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, ok := e.Sim.Drive(static.UUID); ok {
		t.Fatal("the drive without a record was not deleted")
	}
}
