package cloudsigma_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

// helpers maps each Is* helper to the one status it must recognize.
var helpers = map[int]struct {
	name string
	is   func(error) bool
}{
	401: {"IsUnauthorized", cloudsigma.IsUnauthorized},
	402: {"IsPayment", cloudsigma.IsPayment},
	403: {"IsPermission", cloudsigma.IsPermission},
	404: {"IsNotFound", cloudsigma.IsNotFound},
	400: {"IsValidation", cloudsigma.IsValidation},
	503: {"IsConcurrency", cloudsigma.IsConcurrency},
}

// requireOnly checks that exactly the helper of status matches err.
func requireOnly(t *testing.T, err error, status int) {
	t.Helper()
	for st, h := range helpers {
		if got := h.is(err); got != (st == status) {
			t.Errorf("%s(%v) = %v", h.name, err, got)
		}
	}
}

func TestErrorTypes(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)

	t.Run("401 wrong password", func(t *testing.T) {
		const wrong = "wrong-pw-Xy7-never-print"
		e.sim.ResetCalls()
		c := e.client(func(c *cloudsigma.Config) { c.Password = wrong })
		_, err := c.GetCapabilities(ctx)
		requireAPIError(t, err, http.StatusUnauthorized, "permission")
		requireOnly(t, err, 401)
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error string contains the password: %q", err)
		}
		if n := len(e.settledCalls(http.MethodGet, "/capabilities/", 1)); n != 1 {
			t.Errorf("a 401 was tried %d times", n)
		}
	})
	t.Run("404 notexist", func(t *testing.T) {
		_, err := e.c.GetDrive(ctx, "00000000-0000-4000-8000-000000000000")
		requireAPIError(t, err, http.StatusNotFound, cloudsigma.ErrTypeNotExist)
		requireOnly(t, err, 404)
	})
	t.Run("400 size below minimum", func(t *testing.T) {
		_, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "tiny", Size: 1 << 20})
		ae := requireAPIError(t, err, http.StatusBadRequest, cloudsigma.ErrTypeValidation)
		requireOnly(t, err, 400)
		if ae.Point != "size" {
			t.Errorf("error point %q, want size", ae.Point)
		}
	})
	t.Run("403 resize on a running server", func(t *testing.T) {
		id := e.sim.CreateServer("running", true)
		d := e.readyDrive("mounted", gib)
		srv, err := e.c.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.UpdateServerDrives(ctx, srv, []cloudsigma.ServerDrive{{DevChannel: "0:1", Device: "virtio", Drive: cloudsigma.Ref{UUID: d.UUID}}}); err != nil {
			t.Fatal(err)
		}
		if d, err = e.c.GetDrive(ctx, d.UUID); err != nil || !d.IsMountedOn(id) {
			t.Fatalf("drive not mounted: %+v, %v", d, err)
		}
		_, err = e.c.ResizeDrive(ctx, d, 2*gib)
		requireAPIError(t, err, http.StatusForbidden, cloudsigma.ErrTypePermission)
		requireOnly(t, err, 403)
		if sd, _ := e.sim.Drive(d.UUID); sd.Size != gib {
			t.Errorf("refused resize changed the size to %d", sd.Size)
		}
	})
	t.Run("503 concurrency fault exhausts retries", func(t *testing.T) {
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodGet, PathPrefix: "/capabilities/", Status: http.StatusServiceUnavailable})
		defer e.sim.ClearFaults()
		e.sim.ResetCalls()
		_, err := e.c.GetCapabilities(ctx)
		requireAPIError(t, err, http.StatusServiceUnavailable, cloudsigma.ErrTypeConcurrency)
		requireOnly(t, err, 503)
		if n := len(e.settledCalls(http.MethodGet, "/capabilities/", fastRetry.MaxAttempts)); n != fastRetry.MaxAttempts {
			t.Errorf("%d attempts, want %d", n, fastRetry.MaxAttempts)
		}
	})
	t.Run("402 payment fault", func(t *testing.T) {
		e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusPaymentRequired})
		defer e.sim.ClearFaults()
		e.sim.ResetCalls()
		_, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "unpaid", Size: gib})
		requireAPIError(t, err, http.StatusPaymentRequired, cloudsigma.ErrTypePayment)
		requireOnly(t, err, 402)
		if n := len(e.settledCalls(http.MethodPost, "/drives/", 1)); n != 1 {
			t.Errorf("a 402 was tried %d times", n)
		}
	})
	t.Run("429 is retried and is not a permission error", func(t *testing.T) {
		rl := newSimEnv(t, func(c *cloudsim.Config) { c.EnforceRateLimits, c.RateLimitPerMinute = true, 2 }, nil)
		var err error
		for range 3 {
			if _, err = rl.c.GetCapabilities(ctx); err != nil {
				break
			}
		}
		ae := requireAPIError(t, err, http.StatusTooManyRequests, "permission")
		requireOnly(t, err, 429) // none of the helpers
		if n := len(rl.settledCalls(http.MethodGet, "/capabilities/", 2+fastRetry.MaxAttempts)); n != 2+fastRetry.MaxAttempts {
			t.Errorf("%d calls, want 2 allowed + %d attempts (%+v)", n, fastRetry.MaxAttempts, ae)
		}
	})
}

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

func TestDeleteRateLimit(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, func(c *cloudsigma.Config) { c.DeletesPerMinute = 60 })
	ctx := ctxT(t)
	var ids []string
	for range 3 {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "rl", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.UUID)
	}
	var wg sync.WaitGroup
	var slowest time.Duration
	done := make(chan struct{})
	wg.Add(1)
	go func() { // GETs while the deletes wait for the limiter
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			start := time.Now()
			if _, err := e.c.GetCapabilities(ctx); err != nil {
				t.Error(err)
				return
			}
			slowest = max(slowest, time.Since(start))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	for _, id := range ids {
		if err := e.c.DeleteDrive(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	close(done)
	wg.Wait()
	if took < 1800*time.Millisecond {
		t.Errorf("3 deletes at 60/min took %v, want about 2s", took)
	}
	if slowest > 500*time.Millisecond || slowest == 0 {
		t.Errorf("slowest GET during the deletes took %v", slowest)
	}
}

func TestWaitDrive(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{Create: time.Hour} }, nil)
	ctx := ctxT(t)

	t.Run("times out while creating", func(t *testing.T) {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "stuck", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		last, err := e.c.WaitDrive(ctx, d.UUID, cloudsigma.WaitOptions{Timeout: 200 * time.Millisecond, MinInterval: 10 * time.Millisecond}, cloudsigma.StatusUnmounted)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want a deadline error, got %v", err)
		}
		if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
			t.Errorf("gave up after %v, want about 200ms", el)
		}
		if last == nil || last.Status != cloudsigma.StatusCreating || !strings.Contains(err.Error(), "creating") {
			t.Errorf("last drive %+v, error %v", last, err)
		}
	})
	t.Run("fails fast on unavailable", func(t *testing.T) {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "broken", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			if err := e.sim.SetDriveStatus(d.UUID, "unavailable"); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		_, err = e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusUnmounted)
		if !cloudsigma.IsUnavailable(err) {
			t.Fatalf("want IsUnavailable, got %v", err)
		}
		var se *cloudsigma.StatusError
		if !errors.As(err, &se) || se.UUID != d.UUID || se.Kind != "drive" {
			t.Errorf("status error %+v", se)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("took %v to notice", el)
		}
	})
	t.Run("succeeds when the drive settles", func(t *testing.T) {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "fine", Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			if err := e.sim.SetDriveStatus(d.UUID, "unmounted"); err != nil {
				t.Error(err)
			}
		}()
		got, err := e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusUnmounted)
		if err != nil || got.Status != cloudsigma.StatusUnmounted || got.UUID != d.UUID {
			t.Fatalf("WaitDrive: %+v, %v", got, err)
		}
		// A settled status that is not wanted fails at once, not by timeout.
		_, err = e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusMounted)
		var se *cloudsigma.StatusError
		if !errors.As(err, &se) || se.Status != cloudsigma.StatusUnmounted || cloudsigma.IsUnavailable(err) {
			t.Errorf("waiting for mounted on an unmounted drive: %v", err)
		}
	})
	t.Run("normal create delay", func(t *testing.T) {
		n := newSimEnv(t, nil, nil)
		d := n.readyDrive("normal", gib)
		if d.Status != cloudsigma.StatusUnmounted {
			t.Fatalf("status %s", d.Status)
		}
		if len(n.calls(http.MethodGet, "/drives/"+d.UUID+"/")) < 1 {
			t.Error("no polling seen")
		}
	})
}
