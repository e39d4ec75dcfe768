package cloudsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	testUser = "user@example.com"
	testPass = "s3cret"
	gib      = int64(1) << 30
)

// testDelays are short but non-zero, so every transition is observable.
var testDelays = Delays{
	Create: 30 * time.Millisecond, Clone: 60 * time.Millisecond, Resize: 40 * time.Millisecond,
	Snapshot: 40 * time.Millisecond, Delete: 40 * time.Millisecond, Detach: 120 * time.Millisecond,
	ServerUpdate: 20 * time.Millisecond,
}

// env is a simulator behind a real HTTP server, talked to with plain
// net/http and encoding/json.
type env struct {
	t   *testing.T
	sim *Sim
	srv *httptest.Server
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	cfg := Config{Username: testUser, Password: testPass, Delays: testDelays, DataDir: t.TempDir()}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, sim: s, srv: srv}
}

func (e *env) url(path string) string { return e.srv.URL + "/api/2.0" + path }

// raw sends a request with Basic auth; body is JSON-encoded unless it is
// already []byte.
func (e *env) raw(method, path string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				e.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url(path), rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, out
}

// call sends a request, requires the status and decodes the JSON answer.
func (e *env) call(method, path string, body any, want int) any {
	e.t.Helper()
	resp, out := e.raw(method, path, body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	if len(out) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		e.t.Fatalf("%s %s: bad JSON %q: %v", method, path, out, err)
	}
	return v
}

func (e *env) obj(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	m, ok := e.call(method, path, body, want).(map[string]any)
	if !ok {
		e.t.Fatalf("%s %s: not an object", method, path)
	}
	return m
}

// apiErr requires the documented error array and returns its first entry.
func (e *env) apiErr(method, path string, body any, status int, typ string) map[string]any {
	e.t.Helper()
	v := e.call(method, path, body, status)
	list, ok := v.([]any)
	if !ok || len(list) != 1 {
		e.t.Fatalf("%s %s: error body is not a one-entry array: %v", method, path, v)
	}
	m := list[0].(map[string]any)
	for _, k := range []string{"error_type", "error_message", "error_point"} {
		if _, ok := m[k]; !ok {
			e.t.Fatalf("error entry lacks %s: %v", k, m)
		}
	}
	if m["error_type"] != typ {
		e.t.Fatalf("%s %s: error_type %v, want %s (%v)", method, path, m["error_type"], typ, m)
	}
	return m
}

func objects(v map[string]any) []map[string]any {
	var out []map[string]any
	for _, o := range v["objects"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// createDrive creates a drive over the API and waits until it is ready.
func (e *env) createDrive(name string, size int64, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"name": name, "media": "disk", "size": size}
	for k, v := range extra {
		body[k] = v
	}
	id := objects(e.obj("POST", "/drives/", body, http.StatusCreated))[0]["uuid"].(string)
	e.waitStatus(id, "unmounted")
	return id
}

func (e *env) driveStatus(id string) string {
	d, ok := e.sim.Drive(id)
	if !ok {
		return "gone"
	}
	return d.Status
}

func (e *env) waitStatus(id, want string) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("drive %s %s", id, want), func() bool { return e.driveStatus(id) == want })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeAt puts bytes into a drive's backing file, like a guest would.
func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

// attach adds a virtio drive by GET + PUT of the whole server definition.
func (e *env) attach(srv, drive, channel string) map[string]any {
	e.t.Helper()
	def := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	def["drives"] = append(def["drives"].([]any), map[string]any{
		"boot_order": nil, "dev_channel": channel, "device": "virtio", "drive": drive,
	})
	return e.obj("PUT", "/servers/"+srv+"/", def, http.StatusOK)
}

// detach removes a drive by GET + PUT of the whole server definition.
func (e *env) detach(srv, drive string) map[string]any {
	e.t.Helper()
	def := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	var kept []any
	for _, d := range def["drives"].([]any) {
		if d.(map[string]any)["drive"].(map[string]any)["uuid"] != drive {
			kept = append(kept, d)
		}
	}
	def["drives"] = append([]any{}, kept...)
	return e.obj("PUT", "/servers/"+srv+"/", def, http.StatusOK)
}

// jsonRound is v as encoding/json decodes it (numbers as float64).
func jsonRound(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
