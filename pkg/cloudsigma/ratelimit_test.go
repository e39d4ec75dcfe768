package cloudsigma_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

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

// TestRateLimiterWaitIsAContextError: when the limiter's wait would outlast
// the deadline it refuses at once; callers still see a deadline error.
func TestRateLimiterWaitIsAContextError(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, func(c *cloudsigma.Config) { c.RequestsPerMinute = 1 })
	if _, err := e.c.GetCapabilities(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	_, err := e.c.GetCapabilities(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want a deadline error, got %v", err)
	}
	if _, err := e.c.UploadImage(ctx, strings.NewReader("x"), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("upload: want a deadline error, got %v", err)
	}
}
