package controller_test

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

func TestPublishErrors(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	other := e.Sim.CreateServer("other", true)
	vol := create(t, c, "pvc-pub", gib, nil)
	missing := "1b6e5b3c-0000-4000-8000-000000000000"
	pub := func(vol, node string) (*csi.ControllerPublishVolumeResponse, error) {
		return c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: mountCap})
	}
	if _, err := pub(missing, e.Server); status.Code(err) != codes.NotFound {
		t.Fatalf("missing volume: %v", err)
	}
	if _, err := pub(vol.GetVolumeId(), missing); status.Code(err) != codes.NotFound {
		t.Fatalf("missing node: %v", err)
	}
	first, err := pub(vol.GetVolumeId(), e.Server)
	if err != nil || first.GetPublishContext()[params.PublishDriveUUID] != vol.GetVolumeId() || first.GetPublishContext()[params.PublishDevChannel] == "" {
		t.Fatalf("publish: %v %v", first, err)
	}
	_, err = pub(vol.GetVolumeId(), other)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), e.Server) {
		t.Fatalf("publish to a second node: %v, want FailedPrecondition naming %s", err, e.Server)
	}
	for _, req := range []*csi.ControllerUnpublishVolumeRequest{
		{VolumeId: vol.GetVolumeId(), NodeId: missing},
		{VolumeId: missing, NodeId: e.Server},
		{VolumeId: vol.GetVolumeId(), NodeId: other},
		{VolumeId: vol.GetVolumeId(), NodeId: e.Server},
		{VolumeId: vol.GetVolumeId(), NodeId: e.Server},
	} {
		if _, err := c.ControllerUnpublishVolume(ctxT(t), req); err != nil {
			t.Fatalf("unpublish %v: %v", req, err)
		}
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); len(d.MountedOn) != 0 {
		t.Fatalf("still mounted on %v after unpublish returned", d.MountedOn)
	}
}
