package controller_test

import (
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

var sharedBlock = withMode(blockCap, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)

// A raw block volume for several servers is a drive with allow_multimount,
// attached to each; a filesystem volume cannot be shared, and a drive made
// for one server is not shared later.
func TestMultiNodeBlockVolumes(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	api := e.NewClient()
	createWith := func(name string, vc *csi.VolumeCapability, src *csi.VolumeContentSource) (*csi.Volume, error) {
		resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: name,
			CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapabilities: []*csi.VolumeCapability{vc},
			VolumeContentSource: src})
		return resp.GetVolume(), err
	}
	multimount := func(id string) bool {
		t.Helper()
		d, err := api.GetDrive(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return d.AllowMultimount
	}

	if _, err := createWith("pvc-shared-fs", withMode(mountCap, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a shared filesystem volume: %v, want InvalidArgument", err)
	}
	shared, err := createWith("pvc-shared", sharedBlock, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !multimount(shared.GetVolumeId()) {
		t.Fatal("the shared volume's drive does not allow multimount")
	}
	clone, err := createWith("pvc-shared-clone", sharedBlock, volumeSource(shared.GetVolumeId()))
	if err != nil {
		t.Fatal(err)
	}
	if !multimount(clone.GetVolumeId()) {
		t.Fatal("the clone of a shared volume does not allow multimount")
	}

	pub := func(vol, node string, vc *csi.VolumeCapability) error {
		_, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: vc})
		return err
	}
	other := e.Sim.CreateServer("other", true)
	third := e.Sim.CreateServer("third", true)
	for _, node := range []string{e.Server, other} {
		if err := pub(shared.GetVolumeId(), node, sharedBlock); err != nil {
			t.Fatalf("publish the shared volume to %s: %v", node, err)
		}
	}
	d, err := api.GetDrive(ctxT(t), shared.GetVolumeId())
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{e.Server, other} {
		if !slices.ContainsFunc(d.MountedOn, func(r cloudsigma.Ref) bool { return r.UUID == node }) {
			t.Fatalf("shared drive mounted on %v, want %s among them", d.MountedOn, node)
		}
	}
	if err := pub(shared.GetVolumeId(), third, blockCap); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a single-node publish of a drive on two servers: %v, want FailedPrecondition", err)
	}

	single := create(t, c, "pvc-single", gib, nil)
	if err := pub(single.GetVolumeId(), e.Server, sharedBlock); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a shared publish of a single-server drive: %v, want FailedPrecondition", err)
	}
	validate := func(id string) *csi.ValidateVolumeCapabilitiesResponse {
		t.Helper()
		resp, err := c.ValidateVolumeCapabilities(ctxT(t), &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id,
			VolumeCapabilities: []*csi.VolumeCapability{sharedBlock}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if validate(single.GetVolumeId()).GetConfirmed() != nil {
		t.Fatal("a single-server drive confirmed for MULTI_NODE_MULTI_WRITER")
	}
	if validate(shared.GetVolumeId()).GetConfirmed() == nil {
		t.Fatal("the shared drive not confirmed for MULTI_NODE_MULTI_WRITER")
	}

	for _, node := range []string{e.Server, other} {
		if _, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: shared.GetVolumeId(), NodeId: node}); err != nil {
			t.Fatalf("unpublish from %s: %v", node, err)
		}
	}
	if d, err := api.GetDrive(ctxT(t), shared.GetVolumeId()); err != nil || len(d.MountedOn) != 0 {
		t.Fatalf("after unpublishing: mounted on %v (%v)", d.MountedOn, err)
	}
}
