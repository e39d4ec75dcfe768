package controller_test

import (
	"net/http"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// Once a clone exists, every failure is retryable: the provisioner keeps
// calling, finds the drive by name and finishes it, instead of giving up on
// a final code and leaving an unrecorded copy of the source behind.
func TestErrorsAfterTheCloneExistsAreRetryable(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-source", gib, nil)
	// The ownership record (a drive PUT) is refused with a 400, twice: the
	// controller already writes it again once after refreshing its tags.
	e.Sim.InjectFault(cloudsim.Fault{Method: "PUT", PathPrefix: "/drives/", Status: http.StatusBadRequest, Count: 2})
	req := &csi.CreateVolumeRequest{Name: "pvc-clone", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeContentSource: volumeSource(src.GetVolumeId())}
	_, err := c.CreateVolume(ctxT(t), req)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreateVolume with the record refused: %v, want Unavailable (the drive exists)", err)
	}
	resp, err := c.CreateVolume(ctxT(t), req)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	clones := drivesNamed(e, "pvc-clone")
	if len(clones) != 1 || clones[0].UUID != resp.GetVolume().GetVolumeId() {
		t.Fatalf("drives named pvc-clone: %+v; want exactly the one returned", clones)
	}
	if got := clones[0].Meta[controller.MetaName]; got != "pvc-clone" {
		t.Errorf("the clone's record names %q, want pvc-clone", got)
	}
}
