package cloudsigma_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

const (
	testUser     = "csi@example.com"
	testPassword = "pw-Zq8vK2-never-print-me"
	gib          = int64(1) << 30
)

// fastRetry keeps retry tests quick while still exercising backoff.
var fastRetry = cloudsigma.Retry{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}

// simEnv is a simulator behind a real HTTP server and a client talking to it.
type simEnv struct {
	t   *testing.T
	sim *cloudsim.Sim
	srv *httptest.Server
	c   *cloudsigma.Client
}

// newSimEnv starts a simulator (short delays unless simCfg changes them)
// and a client for it (fast retries unless cliCfg changes them).
func newSimEnv(t *testing.T, simCfg func(*cloudsim.Config), cliCfg func(*cloudsigma.Config)) *simEnv {
	t.Helper()
	sc := cloudsim.Config{
		Username: testUser, Password: testPassword, DataDir: t.TempDir(),
		Delays: cloudsim.Delays{
			Create: 20 * time.Millisecond, Clone: 40 * time.Millisecond, Resize: 20 * time.Millisecond,
			Snapshot: 20 * time.Millisecond, Delete: 10 * time.Millisecond, Detach: 20 * time.Millisecond,
		},
	}
	if simCfg != nil {
		simCfg(&sc)
	}
	s, err := cloudsim.New(sc)
	if err != nil {
		t.Fatalf("cloudsim.New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("cloudsim.Close: %v", err)
		}
	})
	e := &simEnv{t: t, sim: s, srv: srv}
	e.c = e.client(cliCfg)
	return e
}

func (e *simEnv) apiURL() string { return e.srv.URL + "/api/2.0/" }

// client returns a new client for the simulator; mutate may change its config.
func (e *simEnv) client(mutate func(*cloudsigma.Config)) *cloudsigma.Client {
	e.t.Helper()
	cfg := cloudsigma.Config{
		APIURL: e.apiURL(), Username: testUser, Password: testPassword,
		AllowInsecureHTTP: true, Retry: fastRetry,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := cloudsigma.New(cfg)
	if err != nil {
		e.t.Fatalf("cloudsigma.New: %v", err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var fastWait = cloudsigma.WaitOptions{Timeout: 10 * time.Second, MinInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond}

// readyDrive creates a drive and waits until it is unmounted.
func (e *simEnv) readyDrive(name string, size int64) *cloudsigma.Drive {
	e.t.Helper()
	ctx := ctxT(e.t)
	d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: size})
	if err != nil {
		e.t.Fatalf("CreateDrive %s: %v", name, err)
	}
	d, err = e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusUnmounted)
	if err != nil {
		e.t.Fatalf("WaitDrive %s: %v", name, err)
	}
	return d
}

// calls returns the logged calls with this method whose path ends with
// suffix (below /api/2.0/).
func (e *simEnv) calls(method, suffix string) []cloudsim.Call {
	var out []cloudsim.Call
	for _, c := range e.sim.Calls() {
		if c.Method == method && strings.HasSuffix(c.Path, suffix) {
			out = append(out, c)
		}
	}
	return out
}

// settledCalls is calls once the log holds at least want matching calls
// and nothing more arrived for a short while: the simulator logs a call
// whose connection it reset only after closing it, so the client may have
// moved on before the entry appears.
func (e *simEnv) settledCalls(method, suffix string, want int) []cloudsim.Call {
	deadline := time.Now().Add(2 * time.Second)
	for len(e.calls(method, suffix)) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return e.calls(method, suffix)
}

// waitGone polls until get reports not found.
func waitGone(t *testing.T, what string, get func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := get()
		if cloudsigma.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// asGeneric re-decodes v's JSON with numbers as json.Number, the form the
// simulator keeps request bodies in.
func asGeneric(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return reflect.DeepEqual(asGeneric(t, a), asGeneric(t, b))
}

func query(t *testing.T, c cloudsim.Call) url.Values {
	t.Helper()
	q, err := url.ParseQuery(c.Query)
	if err != nil {
		t.Fatalf("bad query %q: %v", c.Query, err)
	}
	return q
}

func ptr[T any](v T) *T { return &v }

// requireAPIError checks the fields every decoded API error must carry.
func requireAPIError(t *testing.T, err error, status int, typ string) *cloudsigma.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %d %s error, got nil", status, typ)
	}
	e, ok := cloudsigma.AsError(err)
	if !ok {
		t.Fatalf("want *cloudsigma.Error, got %T: %v", err, err)
	}
	if e.StatusCode != status || e.Type != typ || e.RequestID == "" || e.Message == "" || len(e.Items) == 0 {
		t.Fatalf("error %+v: want status %d type %s, a request id and a message", e, status, typ)
	}
	if !strings.Contains(err.Error(), e.RequestID) {
		t.Errorf("error string %q lacks the request id", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error string contains the password: %q", err)
	}
	return e
}
