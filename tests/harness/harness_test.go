package harness_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// A killed driver does not finish the calls in flight: their callers hear
// Unavailable at once, the driver makes no further API calls for them, and
// a new driver serves the retry.
func TestKillDriverCutsCallsOff(t *testing.T) {
	var calls atomic.Int64
	e := harness.Start(t, harness.Options{SimMiddleware: func(_ *cloudsim.Sim, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			next.ServeHTTP(w, r)
		})
	}})
	c := csi.NewControllerClient(e.Conn())
	e.Sim.InjectFault(cloudsim.Fault{Method: "GET", PathPrefix: "/drives/", Latency: 5 * time.Second, Count: 1})
	errc := make(chan error, 1)
	go func() {
		_, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "pvc-killed",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
		errc <- err
	}()
	time.Sleep(500 * time.Millisecond) // the lookup by name hangs in the fault's latency
	start := time.Now()
	e.KillDriver()
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("the call in flight answered %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("killing the driver took %s: the call in flight was waited for", d)
	}
	before := calls.Load()
	time.Sleep(300 * time.Millisecond)
	if after := calls.Load(); after != before {
		t.Fatalf("the killed driver made %d API calls after it died", after-before)
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatalf("the killed create went on: %+v", e.Sim.Drives())
	}
	e.StartDriver()
	if _, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "pvc-killed",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}}); err != nil {
		t.Fatalf("the retry on a new driver: %v", err)
	}
}
