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
	if p.checkNow(context.Background()) == nil || p.checkNow(context.Background()) == nil || calls != 1 {
		t.Fatalf("a failure is cached for a while: %d calls", calls)
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
