package cloudsigma_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func TestRetries(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	countDrives := func() int { return len(e.sim.Drives()) }

	t.Run("GET retried through two 503s", func(t *testing.T) {
		e.sim.ResetCalls()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodGet, PathPrefix: "/capabilities/", Status: http.StatusServiceUnavailable, Count: 2})
		if _, err := e.c.GetCapabilities(ctx); err != nil {
			t.Fatal(err)
		}
		calls := e.settledCalls(http.MethodGet, "/capabilities/", 3)
		if len(calls) != 3 || calls[0].Status != 503 || calls[1].Status != 503 || calls[2].Status != 200 {
			t.Fatalf("calls %+v, want 503, 503, 200", calls)
		}
	})
	t.Run("GET retried after a reset connection", func(t *testing.T) {
		e.sim.ResetCalls()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodGet, PathPrefix: "/capabilities/", ResetConn: true, Count: 1})
		if _, err := e.c.GetCapabilities(ctx); err != nil {
			t.Fatal(err)
		}
		calls := e.settledCalls(http.MethodGet, "/capabilities/", 2)
		if len(calls) != 2 || !slices.ContainsFunc(calls, func(c cloudsim.Call) bool { return c.Status == 0 }) ||
			!slices.ContainsFunc(calls, func(c cloudsim.Call) bool { return c.Status == 200 }) {
			t.Fatalf("calls %+v, want one reset and one success", calls)
		}
	})
	t.Run("POST not repeated after a reset connection", func(t *testing.T) {
		e.sim.ResetCalls()
		before := countDrives()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", ResetConn: true, Count: 5})
		defer e.sim.ClearFaults()
		_, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "lost-answer", Size: gib})
		if err == nil {
			t.Fatal("CreateDrive succeeded over a reset connection")
		}
		if _, ok := cloudsigma.AsError(err); ok {
			t.Errorf("a reset connection decoded as an API error: %v", err)
		}
		if calls := e.settledCalls(http.MethodPost, "/drives/", 1); len(calls) != 1 || calls[0].Status != 0 {
			t.Fatalf("calls %+v, want exactly one reset POST", calls)
		}
		if countDrives() != before {
			t.Error("a drive was created")
		}
	})
	t.Run("POST retried after an explicit concurrency rejection", func(t *testing.T) {
		e.sim.ResetCalls()
		before := countDrives()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusServiceUnavailable, Count: 1})
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "second-try", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		if calls := e.settledCalls(http.MethodPost, "/drives/", 2); len(calls) != 2 || calls[0].Status != 503 || calls[1].Status != 201 {
			t.Fatalf("calls %+v, want 503 then 201", calls)
		}
		if countDrives() != before+1 || d.Name != "second-try" {
			t.Errorf("%d drives created", countDrives()-before)
		}
	})
	t.Run("server PUT not repeated after a concurrency rejection", func(t *testing.T) {
		// The body is the server as last read: repeating it could write
		// stale fields over the change that conflicted. The caller re-reads.
		id := e.sim.CreateServer("rmw", false)
		srv, err := e.c.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "rmw-data", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		e.sim.ResetCalls()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPut, PathPrefix: "/servers/", Status: http.StatusServiceUnavailable, Count: 1})
		defer e.sim.ClearFaults()
		_, err = e.c.UpdateServerDrives(ctx, srv, []cloudsigma.ServerDrive{{DevChannel: "0:0", Device: "virtio", Drive: cloudsigma.Ref{UUID: d.UUID}}})
		if !cloudsigma.IsConcurrency(err) {
			t.Fatalf("want the concurrency error back, got %v", err)
		}
		if calls := e.settledCalls(http.MethodPut, "/servers/"+id+"/", 1); len(calls) != 1 {
			t.Fatalf("calls %+v, want exactly one PUT", calls)
		}
	})
	t.Run("context cancellation stops the retry loop", func(t *testing.T) {
		e.sim.ResetCalls()
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodGet, PathPrefix: "/capabilities/", Status: http.StatusServiceUnavailable})
		defer e.sim.ClearFaults()
		slow := e.client(func(c *cloudsigma.Config) {
			c.Retry = cloudsigma.Retry{MaxAttempts: 100, BaseDelay: 400 * time.Millisecond, MaxDelay: 2 * time.Second}
		})
		cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := slow.GetCapabilities(cctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want a deadline error, got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("returned %v after the deadline", d)
		}
		if n := len(e.settledCalls(http.MethodGet, "/capabilities/", 1)); n > 2 {
			t.Errorf("%d attempts within 150ms of a 200-400ms backoff", n)
		}
	})
}

// TestPOSTRetriedAfter429: a 429 is an explicit rejection, so even a
// create is repeated; a read-modify-write is not.
func TestPOSTRetriedAfter429(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusTooManyRequests, Count: 1})
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "after-429", Size: gib}); err != nil {
		t.Fatal(err)
	}
	if calls := e.settledCalls(http.MethodPost, "/drives/", 2); len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 201 {
		t.Errorf("calls %+v, want 429 then 201", calls)
	}
	if n := len(e.sim.Drives()); n != 1 {
		t.Errorf("%d drives, want 1", n)
	}
	d, err := e.c.ListDrives(ctx, cloudsigma.Filter{Name: []string{"after-429"}})
	if err != nil || len(d) != 1 {
		t.Fatalf("ListDrives: %v, %v", d, err)
	}
	e.sim.ResetCalls()
	e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusTooManyRequests, Count: 1})
	if _, err := e.c.ResizeDrive(ctx, &d[0], 2*gib); err == nil {
		t.Error("resize succeeded through a 429")
	}
	if calls := e.settledCalls(http.MethodPost, "/action/", 1); len(calls) != 1 {
		t.Errorf("a resize was repeated: %+v", calls)
	}
}
