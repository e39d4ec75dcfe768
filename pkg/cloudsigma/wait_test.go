package cloudsigma_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

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
