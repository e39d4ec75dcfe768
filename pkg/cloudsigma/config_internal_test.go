package cloudsigma

import (
	"fmt"
	"strings"
	"testing"
)

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
