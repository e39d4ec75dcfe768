package cloudsigma

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

// A 429 with Retry-After is retried no sooner than the API asked, even when
// the client's own backoff is much shorter.
func TestClientWaitsAsRetryAfterSays(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`[{"error_type":"permission","error_message":"Too many requests"}]`))
			return
		}
		_, _ = w.Write([]byte(`{"uuid":"5b4a69a3-8e78-4c45-a8ba-8b13f0895e23","name":"d","status":"unmounted","size":1}`))
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL + "/api/2.0/", Username: "u", Password: "p", AllowInsecureHTTP: true,
		Retry: Retry{BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDrive(context.Background(), "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"); err != nil {
		t.Fatalf("GetDrive after one 429: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("%d requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Fatalf("retried after %s; Retry-After asked for 1s", gap)
	}

	// A deadline shorter than the wait ends at once with the API's answer.
	times = nil
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.GetDrive(ctx, "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23")
	mu.Lock()
	if apiErr, ok := AsError(err); !ok || apiErr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("with a short deadline: %v, want the 429", err)
	}
}
