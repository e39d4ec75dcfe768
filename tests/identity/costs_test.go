package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/metrics"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// TestPublishCosts prints the API calls of one ControllerPublishVolume in
// each identity mode, for a blank drive and for a formatted one, and the
// server writes (attach fan-in) of four formatted drives published at
// once. The content evidence costs one API call per publish (the download
// endpoint's redirect) plus one ranged GET on the download host; a drive
// waiting in the attach window costs one more range read per retry;
// distinctive drives never wait.
func TestPublishCosts(t *testing.T) {
	if testing.Short() {
		t.Skip("loop devices: needs root")
	}
	baseBlank, baseFormatted := -1, -1 // API calls with --drive-identity=uuid-serial
	for _, tc := range []struct {
		serials     string
		serialsOnly bool
	}{
		{virtio.GuestSerialUUID, true},
		{virtio.GuestSerialUUID, false},
		{virtio.GuestSerialOther, false},
		{virtio.GuestSerialNone, false},
	} {
		controller := "auto"
		if tc.serialsOnly {
			controller = "uuid-serial"
		}
		t.Run(tc.serials+"/"+controller, func(t *testing.T) {
			e := start(t, tc.serials, tc.serialsOnly)
			ctx := ctxT(t)
			vols := make([]string, 4)
			for i := range vols {
				vols[i] = e.create(fmt.Sprintf("pvc-cost-%d", i), gib)
			}
			// One blank publish, then the drive formatted by its stage.
			e.Sim.ResetCalls()
			if _, err := e.c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vols[0], NodeId: e.Server, VolumeCapability: mountCap}); err != nil {
				t.Fatal(err)
			}
			blank := e.Sim.Calls()
			for _, v := range vols {
				if _, err := e.publishStage(ctx, v); err != nil {
					t.Fatal(err)
				}
				if err := e.unstageUnpublish(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			e.Sim.ResetCalls()
			if _, err := e.publishStage(ctx, vols[0]); err != nil {
				t.Fatal(err)
			}
			formatted := e.Sim.Calls() // the node makes no API calls
			if err := e.unstageUnpublish(ctx, vols[0]); err != nil {
				t.Fatal(err)
			}
			// Fan-in: four formatted drives at once, one server write per batch.
			e.Sim.ResetCalls()
			var wg sync.WaitGroup
			for _, v := range vols {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := e.c.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{VolumeId: v, NodeId: e.Server, VolumeCapability: mountCap}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			puts := 0
			for _, c := range e.Sim.Calls() {
				if c.Method == "PUT" && strings.HasPrefix(metrics.Endpoint(c.Path), "/api/2.0/servers/{uuid}/") {
					puts++
				}
			}
			api, dl, list := summary(blank)
			fapi, fdl, flist := summary(formatted)
			if tc.serialsOnly {
				baseBlank, baseFormatted = api, fapi
			} else if api > baseBlank+1 || fapi > baseFormatted+1 || dl > 1 || fdl > 1 {
				t.Errorf("the content evidence costs more than one API call and one download-host GET per publish: blank %d (base %d), formatted %d (base %d)",
					api, baseBlank, fapi, baseFormatted)
			}
			fmt.Printf("publish costs (guest serials %s, controller --drive-identity=%s): blank drive %d API calls + %d download-host GETs [%s]; "+
				"formatted drive %d API calls + %d download-host GETs [%s]; 4 formatted drives at once: %d server writes\n",
				tc.serials, controller, api, dl, list, fapi, fdl, flist, puts)
		})
	}
}

// summary counts API calls, download-host GETs and lists them by endpoint.
func summary(calls []cloudsim.Call) (api, download int, list string) {
	by := map[string]int{}
	for _, c := range calls {
		ep := c.Method + " " + metrics.Endpoint(c.Path)
		if strings.HasPrefix(c.Path, "/sim-download/") {
			download++
			ep = c.Method + " download-host"
		} else {
			api++
		}
		by[ep]++
	}
	var out []string
	for ep, n := range by {
		out = append(out, fmt.Sprintf("%d× %s", n, ep))
	}
	slices.Sort(out)
	return api, download, strings.Join(out, ", ")
}
