package driver

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestProbeCacheForgetsFailuresSooner(t *testing.T) {
	calls, fail := 0, true
	p := &probeCache{ttl: time.Hour, failTTL: 20 * time.Millisecond, check: func(context.Context) error {
		calls++
		if fail {
			return errors.New("API down")
		}
		return nil
	}}
	first, second := p.checkNow(context.Background()), p.checkNow(context.Background())
	if first == nil || second == nil || calls != 1 {
		t.Fatalf("a failure is cached for a while: %v, %v, %d calls", first, second, calls)
	}
	fail = false
	time.Sleep(30 * time.Millisecond)
	if err := p.checkNow(context.Background()); err != nil || calls != 2 {
		t.Fatalf("after failTTL: %v, %d calls", err, calls)
	}
	if err := p.checkNow(context.Background()); err != nil || calls != 2 {
		t.Fatalf("a success is cached for ttl: %v, %d calls", err, calls)
	}
}
