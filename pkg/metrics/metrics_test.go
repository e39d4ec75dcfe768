package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// scrape fetches /metrics through the real handler and returns the text.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", rec.Code)
	}
	return rec.Body.String()
}

func assertLine(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("scrape lacks line %q; related lines:\n%s", line, related(body, line))
}

// related keeps the lines of the same metric family, for readable failures.
func related(body, line string) string {
	name := line
	if i := strings.IndexAny(line, "{ "); i > 0 {
		name = line[:i]
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestUnaryServerInterceptor(t *testing.T) {
	m := New()
	icpt := m.UnaryServerInterceptor()
	call := func(method string, err error) {
		info := &grpc.UnaryServerInfo{FullMethod: method}
		_, got := icpt(context.Background(), nil, info, func(context.Context, any) (any, error) {
			return "resp", err
		})
		if !errors.Is(got, err) && got != err {
			t.Fatalf("interceptor changed the error: %v", got)
		}
	}
	call("/csi.v1.Controller/CreateVolume", nil)
	call("/csi.v1.Controller/CreateVolume", nil)
	call("/csi.v1.Controller/CreateVolume", status.Error(codes.ResourceExhausted, "quota"))
	call("/csi.v1.Node/NodeStageVolume", status.Error(codes.NotFound, "no device"))
	call("/csi.v1.Identity/Probe", errors.New("plain error"))

	body := scrape(t, m.Handler(nil))
	assertLine(t, body, `csi_operations_total{grpc_code="OK",method="CreateVolume"} 2`)
	assertLine(t, body, `csi_operations_total{grpc_code="ResourceExhausted",method="CreateVolume"} 1`)
	assertLine(t, body, `csi_operations_total{grpc_code="NotFound",method="NodeStageVolume"} 1`)
	assertLine(t, body, `csi_operations_total{grpc_code="Unknown",method="Probe"} 1`)
	assertLine(t, body, `csi_operation_duration_seconds_count{grpc_code="OK",method="CreateVolume"} 2`)
	assertLine(t, body, `csi_operation_duration_seconds_count{grpc_code="ResourceExhausted",method="CreateVolume"} 1`)
	assertLine(t, body, `csi_operation_duration_seconds_bucket{grpc_code="OK",method="CreateVolume",le="300"} 2`)
	assertLine(t, body, `csi_operation_duration_seconds_count{grpc_code="NotFound",method="NodeStageVolume"} 1`)
	assertLine(t, body, `# TYPE csi_operation_duration_seconds histogram`)
}

func TestInstrumentRoundTripper(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/action/"):
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer api.Close()

	m := New()
	client := &http.Client{Transport: m.InstrumentRoundTripper(http.DefaultTransport)}
	do := func(method, path string) {
		req, err := http.NewRequest(method, api.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	do(http.MethodPost, "/api/2.0/drives/5c5a7e5b-1f0e-4d4e-9e2c-0b9c2f3a6d11/action/?do=resize")
	do(http.MethodPost, "/api/2.0/drives/AAAAAAAA-1F0E-4D4E-9E2C-0B9C2F3A6D12/action/?do=clone")
	do(http.MethodGet, "/api/2.0/drives/detail/?limit=0")
	do(http.MethodDelete, "/api/2.0/drives/5c5a7e5b-1f0e-4d4e-9e2c-0b9c2f3a6d11/")

	// A transport error must be counted with status "error", not dropped.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	req, _ := http.NewRequest(http.MethodGet, deadURL+"/api/2.0/servers/5c5a7e5b-1f0e-4d4e-9e2c-0b9c2f3a6d11/", nil)
	if resp, err := client.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatal("expected a transport error from a closed server")
	}

	body := scrape(t, m.Handler(nil))
	assertLine(t, body, `cloudsigma_api_requests_total{endpoint="/api/2.0/drives/{uuid}/action/",method="POST",status="202"} 2`)
	assertLine(t, body, `cloudsigma_api_requests_total{endpoint="/api/2.0/drives/detail/",method="GET",status="200"} 1`)
	assertLine(t, body, `cloudsigma_api_requests_total{endpoint="/api/2.0/drives/{uuid}/",method="DELETE",status="204"} 1`)
	assertLine(t, body, `cloudsigma_api_requests_total{endpoint="/api/2.0/servers/{uuid}/",method="GET",status="error"} 1`)
	assertLine(t, body, `cloudsigma_api_request_duration_seconds_count{endpoint="/api/2.0/drives/{uuid}/action/",method="POST"} 2`)
	assertLine(t, body, `cloudsigma_api_request_duration_seconds_count{endpoint="/api/2.0/servers/{uuid}/",method="GET"} 1`)
	if strings.Contains(body, "5c5a7e5b") || strings.Contains(body, "do=resize") {
		t.Error("a UUID or query string leaked into a label")
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "/",
		"/api/2.0/drives/": "/api/2.0/drives/",
		"/api/2.0/snapshots/0b9c2f3a-1f0e-4d4e-9e2c-5c5a7e5b6d11/action/":                                   "/api/2.0/snapshots/{uuid}/action/",
		"/api/2.0/servers/0b9c2f3a-1f0e-4d4e-9e2c-5c5a7e5b6d11/drives/0b9c2f3a-1f0e-4d4e-9e2c-5c5a7e5b6d12": "/api/2.0/servers/{uuid}/drives/{uuid}",
	} {
		if got := Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNilTransportUsesDefault(t *testing.T) {
	if New().InstrumentRoundTripper(nil) == nil {
		t.Fatal("nil next must fall back to http.DefaultTransport")
	}
}

// /healthz is the process; /readyz the API check, without its error text.
func TestHealthzAndReadyz(t *testing.T) {
	m := New()
	var readyErr error
	h := m.Handler(func(context.Context) error { return readyErr })

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(path); code != http.StatusOK || body != "ok\n" {
			t.Errorf("API up, %s: got %d %q", path, code, body)
		}
	}
	readyErr = errors.New("cloudsigma: GET /api/2.0/capabilities/: 503 secret-ish detail")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("API down, /readyz: got %d %q; want 503 without the error's text", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("API down, /healthz: got %d; an outage must not fail liveness", code)
	}

	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("nil ready func: got %d", rec.Code)
	}
}

func TestAPIUpGauge(t *testing.T) {
	m := New()
	m.SetAPIUp(false)
	assertLine(t, scrape(t, m.Handler(nil)), "cloudsigma_api_up 0")
	m.SetAPIUp(true)
	assertLine(t, scrape(t, m.Handler(nil)), "cloudsigma_api_up 1")
}

func TestServeAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.serve(ctx, ln, nil) }()

	base := "http://" + ln.Addr().String()
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		if path == "/metrics" && !strings.Contains(string(body), "go_goroutines") {
			t.Error("/metrics lacks the Go runtime collector")
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the context was cancelled")
	}
}

func TestServeBadAddress(t *testing.T) {
	if err := New().Serve(context.Background(), "256.0.0.1:bad", nil); err == nil {
		t.Fatal("expected a listen error")
	}
}

func TestRetiredGauges(t *testing.T) {
	m := New()
	m.SetRetired(3, 5<<30)
	body := scrape(t, m.Handler(nil))
	assertLine(t, body, "csi_retired_drives 3")
	assertLine(t, body, "csi_retired_drive_bytes 5.36870912e+09")
}

func TestIdentityModeOneSeries(t *testing.T) {
	m := New()
	m.SetIdentityMode("unknown")
	m.SetIdentityMode("no-serial")
	body := scrape(t, m.Handler(nil))
	assertLine(t, body, `csi_node_drive_identity_mode{mode="no-serial"} 1`)
	if strings.Contains(body, `mode="unknown"`) {
		t.Error("the previous mode's series is still exported")
	}
}
