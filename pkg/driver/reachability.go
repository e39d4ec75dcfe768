package driver

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// ErrAPIUnreachable is what Ready answers while the last check failed; the
// check's own error goes to the log, not to whoever asks.
var ErrAPIUnreachable = errors.New("the CloudSigma API did not answer the last check")

// Reachability checks the CloudSigma API in the background, so an outage is
// a metric, a log line and a failing readiness endpoint, never a restart:
// the controller serves again as soon as the API returns, without waiting
// for the next check (requests simply go through).
type Reachability struct {
	check    func(context.Context) error
	interval time.Duration
	report   func(up bool)

	mu   sync.Mutex
	last error
	seen bool
}

// NewReachability checks with check every interval and hands each outcome to
// report (nil: none).
func NewReachability(check func(context.Context) error, interval time.Duration, report func(up bool)) *Reachability {
	return &Reachability{check: check, interval: interval, report: report}
}

// Run checks until ctx ends.
func (r *Reachability) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckNow runs one check, logs a change of state, and reports it.
func (r *Reachability) CheckNow(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := r.check(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not an outage
	}
	wasUp, first := r.record(err)
	switch {
	case err != nil && (wasUp || first):
		klog.ErrorS(err, "CloudSigma API check failed; CSI calls that need the API fail until it answers")
	case err == nil && !wasUp:
		klog.InfoS("CloudSigma API reachable again")
	}
	if r.report != nil {
		r.report(err == nil)
	}
}

// record keeps the outcome and says what came before.
func (r *Reachability) record(err error) (wasUp, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	wasUp, first = r.last == nil, !r.seen
	r.last, r.seen = err, true
	return wasUp, first
}

// Ready is nil when the last check succeeded (or none ran yet).
func (r *Reachability) Ready(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last != nil {
		return ErrAPIUnreachable
	}
	return nil
}
