package controller_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

// The first CreateVolumes of a fresh cluster run concurrently; they must
// not create the cluster tag twice, or ListVolumes misses volumes.
func TestConcurrentFirstCreatesShareOneClusterTag(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: fmt.Sprintf("pvc-tag-%d", i),
				VolumeCapabilities: []*csi.VolumeCapability{mountCap},
				Parameters:         map[string]string{"tags": "team-a"}})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			ids[i] = resp.GetVolume().GetVolumeId()
		}()
	}
	wg.Wait()
	listed := listVolumeIDs(t, c)
	for _, id := range ids {
		if !listed[id] {
			t.Fatalf("volume %s missing from ListVolumes (%d listed)", id, len(listed))
		}
	}
}

// A requisite topology that excludes the driver's location cannot be met:
// RESOURCE_EXHAUSTED, and no drive is created.
func TestTopologyElsewhereIsRefused(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-elsewhere",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{{
			Segments: map[string]string{"topology.csi.cloudsigma.com/location": "other"}}}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("requisite elsewhere: %v, want ResourceExhausted", err)
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
}
