package controller_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// A CloudSigma outage never makes the plugin look dead: Probe (the
// livenessprobe sidecar's liveness) stays ready while the API answers 503 to
// everything, and the controller serves again within seconds of its return.
func TestOutageKeepsProbeReadyAndServesAfterwards(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	id := csi.NewIdentityClient(e.Conn())
	c := csi.NewControllerClient(e.Conn())
	e.Sim.InjectFault(cloudsim.Fault{Status: http.StatusServiceUnavailable})
	for range 3 {
		resp, err := id.Probe(ctxT(t), &csi.ProbeRequest{})
		if err != nil || !resp.GetReady().GetValue() {
			t.Fatalf("Probe during the outage = %v, %v; want ready", resp, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-outage",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}}); err == nil {
		t.Fatal("CreateVolume succeeded while the API answered 503")
	}
	e.Sim.ClearFaults()
	back := time.Now()
	retry(t, "create after the outage", func() error {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-outage",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
		return err
	})
	took := time.Since(back)
	t.Logf("serving again %s after the API returned", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("the controller took %s to serve again after the API returned", took)
	}
}
