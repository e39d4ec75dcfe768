// Package harness starts the CloudSigma simulator and the real driver for
// tests: the driver serves gRPC on a unix socket and talks HTTP to the
// simulator, exactly as in production with the cloud swapped.
package harness

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/pkg/driver"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

const (
	Username = "csi@example.com"
	Password = "not-a-real-password"
	Location = "sim"
)

// Options tune an environment; zero values give non-zero simulator delays
// and asynchronous detach, as the issue for the controller asks.
type Options struct {
	Delays *cloudsim.Delays
	// GuestDevicesDir enables loop-device guests for the local server.
	GuestDevicesDir string
	// GuestSerials is that guest's serial mode (virtio.GuestSerialUUID
	// when empty, GuestSerialOther, GuestSerialNone).
	GuestSerials string
	// SerialsOnly runs the controller with --drive-identity=uuid-serial:
	// no content evidence, no attach window. A QEMU guest whose disks show
	// a UUID serial form (cloudsim.SerialVirtio or SerialHex) implies it,
	// as an operator would declare what the node reports.
	SerialsOnly bool
	// QEMU makes the local server a real guest instead, with the node
	// plugin inside it (cloudsim.QEMUGuest).
	QEMU *cloudsim.QEMUGuest
	// QEMUServers are more servers, each a QEMU guest with its own node
	// plugin (cloudsim.Config.QEMUServers).
	QEMUServers map[string]cloudsim.QEMUGuest
	// Node, when set, is served next to the controller (mode all).
	Node func(serverUUID string) (csi.NodeServer, error)
	// NoController serves only identity (and Node).
	NoController bool
	Channels     virtio.Channels
	// Hotplug is the simulator's answer to drive changes on running
	// servers (cloudsim.HotplugAccept when empty).
	Hotplug string
	// SweepEvery runs the controller's sweep of retired drives this often.
	SweepEvery time.Duration
	// SimMiddleware, when set, wraps the simulator's HTTP handler: a test
	// observes every API call (and the simulator's state at that moment)
	// before the simulator, faults included, sees it.
	SimMiddleware func(*cloudsim.Sim, http.Handler) http.Handler
	// Wait, when set, is the controller's poll schedule (nil: a fast one
	// for tests; the zero value: the driver's production defaults).
	Wait *cloudsigma.WaitOptions
	// RateLimits makes the simulator answer 429 beyond the documented
	// request rates.
	RateLimits bool
}

// DefaultDelays are small but non-zero, so every asynchronous path runs.
var DefaultDelays = cloudsim.Delays{
	Create: 50 * time.Millisecond, Clone: 100 * time.Millisecond, Resize: 50 * time.Millisecond,
	Snapshot: 50 * time.Millisecond, Delete: 50 * time.Millisecond, Detach: 150 * time.Millisecond,
	ServerUpdate: 20 * time.Millisecond,
}

// Env is a running simulator and driver.
type Env struct {
	Sim      *cloudsim.Sim
	HTTP     *httptest.Server
	APIURL   string
	Server   string // UUID of the simulated local server (the node id)
	Socket   string
	Endpoint string
	Client   *cloudsigma.Client

	t      testing.TB
	opts   Options
	cancel context.CancelFunc
	kill   context.CancelFunc
	done   chan error
}

// Start brings up the simulator and the driver; both stop in t.Cleanup.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	delays := DefaultDelays
	if opts.Delays != nil {
		delays = *opts.Delays
	}
	server := "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"
	s, err := cloudsim.New(cloudsim.Config{
		Username: Username, Password: Password, LocalServer: server,
		GuestDevicesDir: opts.GuestDevicesDir, QEMU: opts.QEMU, QEMUServers: opts.QEMUServers, Delays: delays, Hotplug: opts.Hotplug,
		GuestSerials: map[string]string{server: opts.GuestSerials},
	})
	if err != nil {
		t.Fatalf("starting simulator: %v", err)
	}
	handler := s.Handler()
	if opts.SimMiddleware != nil {
		handler = opts.SimMiddleware(s, handler)
	}
	hs := httptest.NewServer(handler)
	dir, err := os.MkdirTemp("", "csi-sock-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{
		Sim: s, HTTP: hs, APIURL: hs.URL + "/api/2.0/", Server: server,
		Socket: filepath.Join(dir, "csi.sock"), t: t, opts: opts,
	}
	e.Endpoint = "unix://" + e.Socket
	e.Client = e.NewClient()
	t.Cleanup(func() {
		e.StopDriver()
		hs.Close()
		if err := s.Close(); err != nil {
			t.Errorf("closing simulator: %v", err)
		}
		os.RemoveAll(dir)
	})
	e.StartDriver()
	return e
}

// NewClient is a fresh API client for the simulator.
func (e *Env) NewClient() *cloudsigma.Client {
	c, err := cloudsigma.New(cloudsigma.Config{
		APIURL: e.APIURL, Username: Username, Password: Password, AllowInsecureHTTP: true,
		Retry: cloudsigma.Retry{BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
	})
	if err != nil {
		e.t.Fatalf("client: %v", err)
	}
	return c
}

// StartDriver starts the driver process-alike: a fresh client, fresh
// in-memory state, the same socket.
func (e *Env) StartDriver() {
	e.t.Helper()
	// Killing the process-alike cuts its calls off; its run context ends
	// with it, so the sweeper stops too.
	dead, kill := context.WithCancel(context.Background())
	opts := driver.Options{Endpoint: e.Endpoint, Interceptors: []grpc.UnaryServerInterceptor{killable(dead)}}
	var sweeper *controller.Service
	if !e.opts.NoController {
		wait := cloudsigma.WaitOptions{MinInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond, Timeout: time.Minute}
		if e.opts.Wait != nil {
			wait = *e.opts.Wait
		}
		c, err := controller.New(controller.Config{
			Cloud: e.NewClient(), ClusterID: "test-cluster", Location: Location, Channels: e.opts.Channels, SerialsOnly: e.serialsOnly(),
			Wait: wait,
		})
		if err != nil {
			e.t.Fatalf("controller service: %v", err)
		}
		opts.Controller = c
		sweeper = c
	}
	if e.opts.Node != nil {
		n, err := e.opts.Node(e.Server)
		if err != nil {
			e.t.Fatalf("node service: %v", err)
		}
		opts.Node = n
	}
	d, err := driver.New(opts)
	if err != nil {
		e.t.Fatalf("driver: %v", err)
	}
	ctx, cancel := context.WithCancel(dead)
	e.cancel, e.kill, e.done = cancel, kill, make(chan error, 1)
	if sweeper != nil && e.opts.SweepEvery > 0 {
		go sweeper.RunSweeper(ctx, e.opts.SweepEvery, nil)
	}
	go func() { e.done <- d.Run(ctx) }()
	// Ready when a connection is accepted: the socket file appears at bind,
	// a moment before listen, and a stale one may be left by StopDriver.
	for i := 0; i < 500; i++ {
		if conn, err := net.Dial("unix", e.Socket); err == nil {
			conn.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("driver socket %s does not accept connections", e.Socket)
}

// serialsOnly: see Options.SerialsOnly.
func (e *Env) serialsOnly() bool {
	return e.opts.SerialsOnly || (e.opts.QEMU != nil && cloudsim.SerialNamesDrive(e.opts.QEMU.Serial))
}

// StopDriver stops the driver gracefully: calls in flight finish first.
// StartDriver brings up a new one.
func (e *Env) StopDriver() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("driver exited: %v", err)
	}
	e.kill()
	e.cancel, e.kill = nil, nil
}

// KillDriver stops the driver as a crash would: the contexts of the calls
// in flight are cancelled and their answers lost (the callers see
// Unavailable, as when the process dies and the connection drops), and
// nothing of the driver's runs on. Requests it already sent to the API
// take effect or not, as they would. StartDriver brings up a new one.
func (e *Env) KillDriver() {
	if e.kill != nil {
		e.kill()
	}
	e.StopDriver()
}

// killable answers every call that was in flight when dead ended with
// Unavailable, whatever the handler returned, and cancels its context.
func killable(dead context.Context) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(dead, cancel)()
		resp, err := handler(ctx, req)
		if dead.Err() != nil {
			return nil, status.Errorf(codes.Unavailable, "driver killed during %s: the answer is lost", info.FullMethod)
		}
		return resp, err
	}
}

// Conn dials the driver's socket.
func (e *Env) Conn() *grpc.ClientConn {
	e.t.Helper()
	conn, err := grpc.NewClient(e.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}
