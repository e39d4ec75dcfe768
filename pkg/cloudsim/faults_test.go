package cloudsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	e := newEnv(t, nil)
	// Deterministic: the next two matching calls fail, then all is well.
	e.sim.InjectFault(Fault{Method: "GET", PathPrefix: "/drives/", Status: 503, Count: 2})
	e.call("GET", "/servers/", nil, http.StatusOK) // does not match
	e.apiErr("GET", "/drives/", nil, http.StatusServiceUnavailable, "concurrency")
	e.apiErr("GET", "/drives/detail/", nil, http.StatusServiceUnavailable, "concurrency")
	e.call("GET", "/drives/", nil, http.StatusOK)

	e.sim.InjectFault(Fault{PathPrefix: "/drives/", Status: 500, Count: 1})
	e.apiErr("GET", "/drives/", nil, http.StatusInternalServerError, "backend")

	// Connection reset (on a fresh connection: Go retries idempotent
	// requests that fail on a reused one).
	e.sim.InjectFault(Fault{ResetConn: true, Count: 1})
	req, _ := http.NewRequest("GET", e.url("/drives/"), nil)
	req.SetBasicAuth(testUser, testPass)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatalf("reset fault answered %d", resp.StatusCode)
	}

	// Latency alone slows calls down.
	e.sim.InjectFault(Fault{Latency: 150 * time.Millisecond, Count: 1})
	start := time.Now()
	e.call("GET", "/drives/", nil, http.StatusOK)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("latency fault took only %v", d)
	}

	// After: the request takes effect, the answer is lost.
	e.sim.InjectFault(Fault{Method: "POST", PathPrefix: "/drives/", Status: 503, Count: 1, After: true})
	e.apiErr("POST", "/drives/", map[string]any{"name": "ghost", "media": "disk", "size": gib}, http.StatusServiceUnavailable, "concurrency")
	if ds := e.sim.Drives(); len(ds) != 1 || ds[0].Name != "ghost" {
		t.Fatalf("After fault: drives %v", ds)
	}

	if got, want := e.sim.FaultStats(), (FaultStats{Failed: 4, Lost: 1, Delayed: 1}); got != want {
		t.Fatalf("fault stats %+v, want %+v", got, want)
	}

	// Probabilistic, cleared.
	e.sim.InjectFault(Fault{Status: 503, Rate: 1})
	e.apiErr("GET", "/drives/", nil, http.StatusServiceUnavailable, "concurrency")
	e.sim.ClearFaults()
	e.call("GET", "/drives/", nil, http.StatusOK)
}

func TestCallLog(t *testing.T) {
	e := newEnv(t, nil)
	e.call("GET", "/drives/?limit=0", nil, http.StatusOK)
	e.apiErr("GET", "/drives/missing/", nil, http.StatusNotFound, "notexist")
	calls := e.sim.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls logged", len(calls))
	}
	c := calls[0]
	if c.Method != "GET" || c.Path != "/api/2.0/drives/" || c.Query != "limit=0" || c.Status != 200 || c.Time.IsZero() || c.Duration <= 0 {
		t.Fatalf("call: %+v", c)
	}
	if calls[1].Status != 404 || !strings.HasSuffix(calls[1].Path, "/missing/") {
		t.Fatalf("call: %+v", calls[1])
	}
	e.sim.ResetCalls()
	if n := len(e.sim.Calls()); n != 0 {
		t.Fatalf("%d calls after reset", n)
	}
}
