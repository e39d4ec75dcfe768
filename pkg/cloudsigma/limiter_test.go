package cloudsigma

import (
	"fmt"
	"strings"
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

// TestConfigStringHidesSecrets: a Config printed in a log or an error
// shows neither the password, the token, nor a password in a URL.
func TestConfigStringHidesSecrets(t *testing.T) {
	cfg := Config{
		APIURL: "https://u:url-secret@api.example.net/api/2.0/", Username: "me@example.com",
		Password: "pw-secret", Token: "tok-secret",
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg)} {
		for _, secret := range []string{"url-secret", "pw-secret", "tok-secret"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q reveals %s", s, secret)
			}
		}
		if !strings.Contains(s, "me@example.com") {
			t.Errorf("%q lost the username", s)
		}
	}
}

// TestLocationCodeValidated: a location code is spliced into the host
// name; one that is not a plain code would pick another host to send the
// credentials to.
func TestLocationCodeValidated(t *testing.T) {
	for _, loc := range []string{"evil.example/", "x@evil.example", "zrh.cloudsigma.com", "ZRH ", "a/b"} {
		if _, err := New(Config{Location: loc, Username: "u", Password: "p"}); err == nil {
			t.Errorf("location %q accepted", loc)
		}
	}
	c, err := New(Config{Location: "zrh", Username: "u", Password: "p"})
	if err != nil || c.BaseURL() != "https://zrh.cloudsigma.com/api/2.0/" || c.upload.Host != "direct.zrh.cloudsigma.com" {
		t.Fatalf("zrh: %v", err)
	}
}
