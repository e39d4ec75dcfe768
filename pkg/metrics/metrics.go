// Package metrics holds the driver's Prometheus collectors: CSI operations as
// seen by the gRPC server, and CloudSigma API requests as seen by the HTTP
// client. They live in a registry of their own so tests and several driver
// instances in one process never collide on the global default registry.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Buckets reach minutes because CloudSigma operations (clone, resize, a
// server PUT during attach) take seconds and the sidecars wait up to 300 s.
var (
	csiBuckets = []float64{0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	apiBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// Metrics owns a registry and the collectors the driver updates.
type Metrics struct {
	registry    *prometheus.Registry
	csiOps      *prometheus.CounterVec
	csiDuration *prometheus.HistogramVec
	apiRequests *prometheus.CounterVec
	apiDuration *prometheus.HistogramVec
	retired     prometheus.Gauge
	retiredSize prometheus.Gauge
	apiUp       prometheus.Gauge
	identity    *prometheus.GaugeVec
}

// New returns a Metrics with its collectors registered, plus the Go runtime
// and process collectors so one scrape shows memory and file descriptors too.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		csiOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csi_operations_total",
			Help: "CSI gRPC calls served, by method and gRPC status code.",
		}, []string{"method", "grpc_code"}),
		csiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "csi_operation_duration_seconds",
			Help:    "Time spent serving CSI gRPC calls, by method and gRPC status code (fast refusals apart from real work).",
			Buckets: csiBuckets,
		}, []string{"method", "grpc_code"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudsigma_api_requests_total",
			Help: "CloudSigma API requests, by HTTP method, endpoint (UUIDs replaced by {uuid}) and status code or \"error\".",
		}, []string{"method", "endpoint", "status"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cloudsigma_api_request_duration_seconds",
			Help:    "CloudSigma API request latency until the response headers arrive, by HTTP method and endpoint.",
			Buckets: apiBuckets,
		}, []string{"method", "endpoint"}),
		retired: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "csi_retired_drives",
			Help: "Drives of deleted volumes kept because they still have snapshots (CloudSigma would delete the snapshots with them), as of the last sweep.",
		}),
		apiUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cloudsigma_api_up",
			Help: "1 when the last periodic check of the CloudSigma API succeeded, 0 when it failed (controller only).",
		}),
		retiredSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "csi_retired_drive_bytes",
			Help: "Size of the retired drives, billed until their last snapshot is deleted.",
		}),
		identity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "csi_node_drive_identity_mode",
			Help: "1 for the way this node's guest lets it identify drives (uuid-serial, other-serial, no-serial; unknown until a disk is visible), detected or forced; see docs/identity.md (node only).",
		}, []string{"mode"}),
	}
	m.registry.MustRegister(
		m.csiOps, m.csiDuration, m.apiRequests, m.apiDuration, m.retired, m.retiredSize, m.apiUp, m.identity,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// SetRetired records what the last sweep of retired drives left.
func (m *Metrics) SetRetired(drives int, bytes int64) {
	m.retired.Set(float64(drives))
	m.retiredSize.Set(float64(bytes))
}

// SetIdentityMode records the node's drive identity mode: 1 for mode, the
// series of any other mode removed.
func (m *Metrics) SetIdentityMode(mode string) {
	m.identity.Reset()
	m.identity.WithLabelValues(mode).Set(1)
}

// Registry exposes the registry so callers can add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// UnaryServerInterceptor counts and times every unary CSI call. All CSI
// services are unary, so no stream interceptor is needed.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		method := shortMethod(info.FullMethod)
		code := status.Code(err).String()
		m.csiOps.WithLabelValues(method, code).Inc()
		m.csiDuration.WithLabelValues(method, code).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// shortMethod turns "/csi.v1.Controller/CreateVolume" into "CreateVolume":
// CSI method names are unique across the Identity, Controller and Node
// services, so the service prefix only adds noise to dashboards.
func shortMethod(fullMethod string) string {
	if i := strings.LastIndexByte(fullMethod, '/'); i >= 0 {
		return fullMethod[i+1:]
	}
	return fullMethod
}

// InstrumentRoundTripper wraps next (http.DefaultTransport when nil) so that
// every CloudSigma API request is counted and timed.
func (m *Metrics) InstrumentRoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(req)
		endpoint := Endpoint(req.URL.Path)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.apiRequests.WithLabelValues(req.Method, endpoint, code).Inc()
		m.apiDuration.WithLabelValues(req.Method, endpoint).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// Endpoint replaces every UUID in an API path with "{uuid}" so the endpoint
// label has a bounded set of values: one series per API route, not per drive.
func Endpoint(path string) string {
	if path == "" {
		return "/"
	}
	return uuidRE.ReplaceAllString(path, "{uuid}")
}

// ReadyFunc reports whether the driver can do its work (the controller:
// the CloudSigma API answers); it gets the request's context.
type ReadyFunc func(ctx context.Context) error

// Handler serves /metrics from the registry, /healthz (the process serves:
// always 200 "ok") and /readyz from ready: 200 "ok" when it returns nil (or
// is nil), 503 "not ready" otherwise. The reason stays in the driver's log:
// a probe endpoint answers anyone who reaches the port, and the API's error
// text is not theirs to read.
func (m *Metrics) Handler(ready ReadyFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && ready(r.Context()) != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// SetAPIUp records the last check of the CloudSigma API (1 up, 0 down).
func (m *Metrics) SetAPIUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.apiUp.Set(v)
}

// Serve listens on addr and serves Handler(ready) until ctx is done, then
// shuts down gracefully. It returns nil after a shutdown caused by ctx.
func (m *Metrics) Serve(ctx context.Context, addr string, ready ReadyFunc) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return m.serve(ctx, ln, ready)
}

func (m *Metrics) serve(ctx context.Context, ln net.Listener, ready ReadyFunc) error {
	srv := &http.Server{
		Handler: m.Handler(ready),
		// Bounded so a stuck scraper cannot pin connections forever.
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			return serveErr
		}
		return err
	}
}
