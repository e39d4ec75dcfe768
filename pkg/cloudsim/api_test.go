package cloudsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = "tok" })
	get := func(set func(*http.Request)) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.url("/drives/"), nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	cases := map[string]func(*http.Request){
		"none":         func(*http.Request) {},
		"bad password": func(r *http.Request) { r.SetBasicAuth(testUser, "nope") },
		"bad user":     func(r *http.Request) { r.SetBasicAuth("x@y", testPass) },
		"bad token":    func(r *http.Request) { r.Header.Set("Authorization", "Bearer other") },
	}
	ids := map[string]bool{}
	for name, set := range cases {
		resp, body := get(set)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		var errs []map[string]any
		if err := json.Unmarshal(body, &errs); err != nil || len(errs) != 1 || errs[0]["error_type"] == nil {
			t.Fatalf("%s: body %s is not the error array", name, body)
		}
		id := resp.Header.Get("X-REQUEST-ID")
		if id == "" || ids[id] {
			t.Fatalf("%s: X-REQUEST-ID %q missing or repeated", name, id)
		}
		ids[id] = true
	}
	if resp, _ := get(func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }); resp.StatusCode != http.StatusOK {
		t.Fatalf("bearer token: status %d", resp.StatusCode)
	}
	if resp, _ := get(func(r *http.Request) { r.SetBasicAuth(testUser, testPass) }); resp.StatusCode != http.StatusOK {
		t.Fatalf("basic: status %d", resp.StatusCode)
	}
	// Uploads accept Basic only.
	req, _ := http.NewRequest("POST", e.url("/drives/upload/"), strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer upload: status %d, want 401", resp.StatusCode)
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t, nil)
	_, body := e.raw("GET", "/capabilities/", nil)
	c := e.obj("GET", "/capabilities/", nil, http.StatusOK)
	dssd := c["drives"].(map[string]any)["dssd"].(map[string]any)
	if dssd["min_size"] != 536870912.0 || dssd["max_size"] != 4391067795456.0 {
		t.Fatalf("dssd limits: %v", dssd)
	}
	// CloudSigma sends zadara's minimum as a float literal.
	if !strings.Contains(string(body), `"min_size":1073741824.0`) {
		t.Fatalf("zadara min_size not a float literal: %s", body)
	}
	snaps := c["snapshots"].(map[string]any)
	if snaps["max"] != 700.0 || snaps["max_per_drive"] != 90.0 || snaps["current"] != 0.0 {
		t.Fatalf("snapshots: %v", snaps)
	}
}

func TestRoutingDetails(t *testing.T) {
	e := newEnv(t, nil)
	// A GET without the trailing slash is redirected (and followed).
	if v := e.obj("GET", "/drives?limit=0", nil, http.StatusOK); v["meta"] == nil {
		t.Fatal("no list after redirect")
	}
	e.apiErr("POST", "/drives", map[string]any{}, http.StatusNotFound, "notexist")
	e.apiErr("GET", "/nothing/", nil, http.StatusNotFound, "notexist")
	e.apiErr("GET", "/drives/00000000-0000-0000-0000-000000000000/", nil, http.StatusNotFound, "notexist")
	e.apiErr("PATCH", "/drives/", nil, http.StatusMethodNotAllowed, "validation")
	req, _ := http.NewRequest("GET", e.url("/drives/"), nil)
	req.SetBasicAuth(testUser, testPass)
	req.Header.Set("Accept", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("Accept xml: %d, want 406", resp.StatusCode)
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.EnforceRateLimits = true
		c.RateLimitPerMinute = 5
		c.DeleteRateLimitPerMinute = 1
	})
	for i := 0; i < 5; i++ {
		e.call("GET", "/drives/", nil, http.StatusOK)
	}
	e.apiErr("GET", "/drives/", nil, http.StatusTooManyRequests, "permission")
	e.apiErr("DELETE", "/drives/00000000-0000-0000-0000-000000000000/", nil, http.StatusNotFound, "notexist")
	e.apiErr("DELETE", "/drives/00000000-0000-0000-0000-000000000000/", nil, http.StatusTooManyRequests, "permission")
}

// ServeMux picks a pattern per method; the API's URL list gives a literal
// segment its URL whole. These pin the answers the hand-written router gave.
func TestRoutingLiteralSegmentsOwnTheirURL(t *testing.T) {
	e := newEnv(t, nil)
	srv := e.sim.CreateServer("vm", false)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"DELETE", "/drives/detail/", http.StatusMethodNotAllowed, "GET"},
		{"PUT", "/tags/detail/", http.StatusMethodNotAllowed, "GET"},
		{"POST", "/snapshots/detail/", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/drives/upload/", http.StatusMethodNotAllowed, "POST"},
		{"GET", "/drives/upload/disk.raw", http.StatusMethodNotAllowed, "POST"}, // not redirected
		{"HEAD", "/drives/", http.StatusMethodNotAllowed, "GET, POST, DELETE"},
		{"GET", "/drives/detail/action/", http.StatusMethodNotAllowed, "POST"},
		{"POST", "/drives/detail/action/?do=clone", http.StatusNotFound, ""},
		{"POST", "/servers/" + srv + "/action/", http.StatusBadRequest, ""},
		{"POST", "/servers/" + srv + "/action/?do=explode", http.StatusBadRequest, ""},
		{"POST", "/servers/00000000-0000-0000-0000-000000000000/action/?do=explode", http.StatusNotFound, ""},
		{"GET", "/drives/x/bogus/", http.StatusNotFound, ""},
	} {
		resp, body := e.raw(c.method, c.path, nil)
		if resp.StatusCode != c.status || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d (Allow %q) %s, want %d (Allow %q)", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), body, c.status, c.allow)
		}
	}
	for path, want := range map[string]string{
		"/drives/upload/":         "POST",
		"/drives/upload/disk.raw": "POST",
		"/servers/" + srv + "/":   "GET, PUT, DELETE",
		"/jobs/detail/":           "GET",
	} {
		req, _ := http.NewRequest(http.MethodOptions, e.url(path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Allow") != want {
			t.Errorf("OPTIONS %s: %d %q, want %q", path, resp.StatusCode, resp.Header.Get("Allow"), want)
		}
	}
}
