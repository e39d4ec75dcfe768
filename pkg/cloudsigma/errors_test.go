package cloudsigma_test

import (
	"net/http"
	"strings"
	"testing"

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
