package cloudsigma

import (
	"testing"
	"time"
)

// TestLimiterKeepsEveryMinuteUnderTheLimit: the documented limits are per
// minute (DELETE 1000/min, others 10000/min). A token bucket that allows a
// burst on top of the steady rate would let the first minute hold
// n + burst calls; no 60 second window may hold more than n.
func TestLimiterKeepsEveryMinuteUnderTheLimit(t *testing.T) {
	for _, n := range []int{1, 60, 1000, 10000} {
		lim := perMinute(n)
		t0 := time.Now()
		allowed := 0
		for at := t0; at.Before(t0.Add(time.Minute)); at = at.Add(time.Millisecond) {
			for lim.AllowN(at, 1) {
				allowed++
			}
		}
		if allowed > n || allowed < n*95/100 {
			t.Errorf("%d/min: %d calls allowed in the first minute", n, allowed)
		}
	}
}
