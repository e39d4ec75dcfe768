package controller_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// apiCalls is the simulator's call log since the last reset, one line per
// call ("GET /api/2.0/drives/<uuid>/").
func apiCalls(s *cloudsim.Sim) []string {
	var out []string
	for _, c := range s.Calls() {
		line := c.Method + " " + c.Path
		if c.Query != "" {
			line += "?" + c.Query
		}
		out = append(out, fmt.Sprintf("%s -> %d", line, c.Status))
	}
	return out
}

// In steady state (caches warm, no conflicts, no holder to free)
// ControllerPublishVolume makes at most three API calls: read the drive,
// read the server, write the server. The publish record rides in that write
// and the confirmation is its answer. Counted in the simulator's call log,
// through the real driver over gRPC against the simulator over HTTP.
func TestPublishMakesAtMostThreeAPICalls(t *testing.T) {
	// With UUID serials declared (--drive-identity=uuid-serial); the
	// content evidence of auto adds one API call and one download-host GET
	// (tests/identity TestPublishCosts holds it to that).
	e := harness.Start(t, harness.Options{SerialsOnly: true})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-calls", gib, nil)
	for _, round := range []string{"first publish", "repeated publish"} {
		e.Sim.ResetCalls()
		if err := publishTo(t, c, vol.GetVolumeId(), e.Server); err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		calls := apiCalls(e.Sim)
		if len(calls) > 3 {
			t.Fatalf("%s made %d API calls, want at most 3:\n%s", round, len(calls), strings.Join(calls, "\n"))
		}
		t.Logf("%s: %d calls: %v", round, len(calls), calls)
	}
	puts := 0
	for _, call := range e.Sim.Calls() {
		if call.Method == http.MethodPut {
			puts++
		}
	}
	if puts != 0 {
		t.Errorf("a repeated publish wrote %d times, want no write", puts)
	}
	// The record is in the server's meta, so unpublish needs no drive read
	// before its write: server read, server write, then drive reads (polls).
	e.Sim.ResetCalls()
	if _, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), NodeId: e.Server}); err != nil {
		t.Fatal(err)
	}
	calls := apiCalls(e.Sim)
	if len(calls) < 3 || !strings.HasPrefix(calls[0], "GET /api/2.0/servers/") || !strings.HasPrefix(calls[1], "PUT /api/2.0/servers/") {
		t.Fatalf("unpublish calls, want a server read, a server write, then drive reads:\n%s", strings.Join(calls, "\n"))
	}
	for _, call := range calls[2:] {
		if !strings.HasPrefix(call, "GET /api/2.0/drives/") {
			t.Fatalf("unpublish calls, want only drive reads after the write:\n%s", strings.Join(calls, "\n"))
		}
	}
}

// The calls of CreateVolume and DeleteVolume, logged for the record (the
// bench counts them under load): a create is the lookup by name, the
// create, and one read per status poll once the capabilities and the
// cluster tag are cached.
func TestCreateDeleteCalls(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	for _, name := range []string{"pvc-first", "pvc-second"} {
		e.Sim.ResetCalls()
		vol := create(t, c, name, gib, nil)
		calls := apiCalls(e.Sim)
		t.Logf("create %s: %d calls:\n%s", name, len(calls), strings.Join(calls, "\n"))
		if name == "pvc-second" && (len(calls) < 2 || !strings.Contains(calls[0], "name=") || !strings.HasPrefix(calls[1], "POST /api/2.0/drives/")) {
			t.Errorf("a warm create: want the lookup by name, then the create, then polls")
		}
		e.Sim.ResetCalls()
		if _, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
			t.Fatal(err)
		}
		calls = apiCalls(e.Sim)
		t.Logf("delete: %d calls:\n%s", len(calls), strings.Join(calls, "\n"))
	}
}
