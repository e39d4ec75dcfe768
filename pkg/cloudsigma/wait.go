package cloudsigma

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// WaitOptions tune a waiter. Zero values mean: poll from 250ms up to 5s, and
// give up at the context's deadline or after 10 minutes.
type WaitOptions struct {
	Timeout                  time.Duration
	MinInterval, MaxInterval time.Duration
	// Seen, when set, is when the caller last saw the object in motion
	// (the answer that started the change): the first poll comes a
	// MinInterval after it instead of at once, and the pauses grow from it.
	Seen time.Time
}

func (o WaitOptions) withDefaults() WaitOptions {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 250 * time.Millisecond
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 5 * time.Second
	}
	return o
}

// WaitDrive polls a drive until its status is one of want. Landing in
// `unavailable`, or in a settled status that is not wanted, is a
// *StatusError at once rather than a timeout.
func (c *Client) WaitDrive(ctx context.Context, uuid string, opts WaitOptions, want ...string) (*Drive, error) {
	return WaitDriveBy(ctx, c.GetDrive, uuid, opts, want...)
}

// WaitDriveBy is WaitDrive reading the drive with get (DriveReads.Get
// shares the reads of concurrent waits).
func WaitDriveBy(ctx context.Context, get func(context.Context, string) (*Drive, error), uuid string, opts WaitOptions, want ...string) (*Drive, error) {
	var last *Drive
	err := poll(ctx, opts, func(ctx context.Context) (bool, error) {
		d, err := get(ctx, uuid)
		if err != nil {
			return false, err
		}
		last = d
		return settled("drive", uuid, d.Status, want)
	})
	if err != nil && last != nil && ctxErr(err) {
		return last, fmt.Errorf("cloudsigma: drive %s still %q: %w", uuid, last.Status, err)
	}
	return last, err
}

// WaitSnapshot polls a snapshot until its status is one of want.
func (c *Client) WaitSnapshot(ctx context.Context, uuid string, opts WaitOptions, want ...string) (*Snapshot, error) {
	var last *Snapshot
	err := poll(ctx, opts, func(ctx context.Context) (bool, error) {
		s, err := c.GetSnapshot(ctx, uuid)
		if err != nil {
			return false, err
		}
		last = s
		return settled("snapshot", uuid, s.Status, want)
	})
	if err != nil && last != nil && ctxErr(err) {
		return last, fmt.Errorf("cloudsigma: snapshot %s still %q: %w", uuid, last.Status, err)
	}
	return last, err
}

func settled(kind, uuid, status string, want []string) (bool, error) {
	switch {
	case slices.Contains(want, status):
		return true, nil
	case status == StatusUnavailable || !slices.Contains(DriveInMotion, status):
		return false, &StatusError{Kind: kind, UUID: uuid, Status: status, Want: want}
	}
	return false, nil
}

// Poll calls check with growing intervals until it reports done, fails, or
// the deadline passes. Exported for callers that wait on conditions of their
// own (a drive leaving a server after an asynchronous detach).
func Poll(ctx context.Context, opts WaitOptions, check func(context.Context) (bool, error)) error {
	return poll(ctx, opts, check)
}

func poll(ctx context.Context, opts WaitOptions, check func(context.Context) (bool, error)) error {
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := opts.Seen
	if start.IsZero() {
		start = time.Now()
	} else if err := sleep(ctx, time.Until(start.Add(opts.MinInterval))); err != nil {
		return err
	}
	for {
		done, err := check(ctx)
		if done || err != nil {
			return err
		}
		// A pause of a sixth of the time waited so far: the wait ends at
		// most about a sixth after the change it waits for, whatever the
		// change takes, at a number of polls that grows with its logarithm
		// (concurrent waits share their reads: DriveReads).
		if err := sleep(ctx, min(max(opts.MinInterval, time.Since(start)/6), opts.MaxInterval)); err != nil {
			return err
		}
	}
}

// backoff is the delay before retry number attempt (1-based): exponential
// with jitter, so many clients retrying one busy server spread out.
func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 20)
	if d <= 0 || d > limit {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
