package controller_test

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

// ControllerExpandVolume: capabilities the volume cannot serve are
// InvalidArgument; a smaller size is a no-op that reports the current size;
// block volumes need no node expansion.
func TestExpandVolumeCapabilitiesAndShrink(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-expand", 2*gib, nil)
	multi := &csi.VolumeCapability{AccessType: mountCap.AccessType,
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER}}
	_, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}, VolumeCapability: multi})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("expand with MULTI_NODE_MULTI_WRITER: %v, want InvalidArgument", err)
	}
	resp, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapability: mountCap})
	if err != nil || resp.GetCapacityBytes() != 2*gib {
		t.Fatalf("shrink: %v %v, want OK with the current size", resp, err)
	}
	resp, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{LimitBytes: 5 * gib}, VolumeCapability: mountCap})
	if err != nil || resp.GetCapacityBytes() != 2*gib {
		t.Fatalf("only a limit the drive meets: %v %v, want OK with the current size", resp, err)
	}
	if _, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{LimitBytes: gib}, VolumeCapability: mountCap}); status.Code(err) != codes.OutOfRange {
		t.Fatalf("a limit below the drive's size: %v, want OutOfRange", err)
	}
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: mountCap.AccessMode}
	resp, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}, VolumeCapability: block})
	if err != nil || resp.GetCapacityBytes() < 3*gib || resp.GetNodeExpansionRequired() {
		t.Fatalf("block expand: %v %v", resp, err)
	}
	_, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: "1b6e5b3c-0000-4000-8000-000000000000",
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("expand a missing volume: %v, want NotFound", err)
	}
}
