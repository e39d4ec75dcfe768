package cloudsim

import (
	"net/http"

	"golang.org/x/time/rate"
)

// Documented call-rate limits (manual 2.13), per minute.
const (
	defaultRatePerMinute   = 10000
	defaultDeletePerMinute = 1000
)

// rateLimits allows a full minute's worth of calls at once and refills
// continuously; the manual documents no rate-limit headers, so none are sent.
type rateLimits struct {
	general, del *rate.Limiter
}

func newRateLimits(perMinute, deletePerMinute int) *rateLimits {
	if perMinute <= 0 {
		perMinute = defaultRatePerMinute
	}
	if deletePerMinute <= 0 {
		deletePerMinute = defaultDeletePerMinute
	}
	lim := func(n int) *rate.Limiter { return rate.NewLimiter(rate.Limit(float64(n)/60), n) }
	return &rateLimits{general: lim(perMinute), del: lim(deletePerMinute)}
}

func (l *rateLimits) allow(method string) bool {
	if method == http.MethodDelete {
		return l.del.Allow()
	}
	return l.general.Allow()
}
