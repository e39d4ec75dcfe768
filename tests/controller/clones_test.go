package controller_test

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

// A clone inherits its source's meta in CloudSigma; the clone must still be
// recorded as its own volume: listed, and found again by a retried
// CreateVolume instead of AlreadyExists.
func TestClonesAreIdempotentAndListed(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-clone-src", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-clone-src", SourceVolumeId: src.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  *csi.VolumeContentSource
		key  string
	}{
		{"pvc-from-volume", volumeSource(src.GetVolumeId()), "volume:" + src.GetVolumeId()},
		{"pvc-from-snapshot", snapshotSource(snap.GetSnapshot().GetSnapshotId()), "snapshot:" + snap.GetSnapshot().GetSnapshotId()},
	} {
		first := create(t, c, tc.name, 2*gib, tc.src)
		again, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{
			Name: tc.name, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib},
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: tc.src,
		})
		if err != nil || again.GetVolume().GetVolumeId() != first.GetVolumeId() {
			t.Fatalf("%s: retried CreateVolume: %v, %v; want volume %s", tc.name, again, err, first.GetVolumeId())
		}
		if n := len(drivesNamed(e, tc.name)); n != 1 {
			t.Fatalf("%s: %d drives", tc.name, n)
		}
		d, _ := e.Sim.Drive(first.GetVolumeId())
		if d.Meta["csi_source"] != tc.key {
			t.Fatalf("%s: drive meta %v, want csi_source %q", tc.name, d.Meta, tc.key)
		}
		if !listVolumeIDs(t, c)[first.GetVolumeId()] {
			t.Fatalf("%s: clone %s missing from ListVolumes", tc.name, first.GetVolumeId())
		}
	}
}

// Sources that do not exist are NotFound; a size below the source's is
// OutOfRange.
func TestMissingSourcesAreNotFound(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	for _, src := range []*csi.VolumeContentSource{
		volumeSource("1b6e5b3c-0000-4000-8000-000000000000"),
		snapshotSource("1b6e5b3c-0000-4000-8000-000000000000"),
	} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-missing-src",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: src})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("source %v: %v, want NotFound", src, err)
		}
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
}

// local_nvme drives are ephemeral: CloudSigma neither clones nor snapshots
// them. That is an unsupported source (InvalidArgument), not a permission
// problem.
func TestLocalNVMeSourcesAreInvalid(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	local, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-local",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: map[string]string{"storageType": "local_nvme"}})
	if err != nil {
		t.Fatal(err)
	}
	dssd := create(t, c, "pvc-dssd", gib, nil)
	for _, tc := range []struct {
		params map[string]string
		src    *csi.VolumeContentSource
	}{
		{nil, volumeSource(local.GetVolume().GetVolumeId())},
		{map[string]string{"storageType": "local_nvme"}, volumeSource(dssd.GetVolumeId())},
	} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-clone-local",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: tc.params, VolumeContentSource: tc.src})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("clone %v with %v: %v, want InvalidArgument", tc.src, tc.params, err)
		}
	}
	_, err = c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-local", SourceVolumeId: local.GetVolume().GetVolumeId()})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("snapshot of local_nvme: %v, want InvalidArgument", err)
	}
}
