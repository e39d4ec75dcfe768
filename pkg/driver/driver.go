// Package driver assembles the CSI plugin: one gRPC server with the identity
// service, and the controller (pkg/controller) and node (pkg/node) services
// it is given, with logging and metrics interceptors around every call.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Options configure a Driver: at least one of Controller and Node.
type Options struct {
	Endpoint string // unix:///path/csi.sock or tcp://127.0.0.1:port (loopback only)

	// Controller, when set, is served as the controller service.
	Controller csi.ControllerServer
	// Node, when set, is served as the node service.
	Node csi.NodeServer

	// Interceptors run around every call (metrics).
	Interceptors []grpc.UnaryServerInterceptor
}

// Driver is a configured CSI plugin.
type Driver struct {
	opts Options
	srv  *grpc.Server
}

// New validates opts and builds the services.
func New(opts Options) (*Driver, error) {
	if opts.Endpoint == "" {
		return nil, errors.New("an endpoint is required")
	}
	if opts.Controller == nil && opts.Node == nil {
		return nil, errors.New("nothing to serve: enable the controller, the node service, or both")
	}
	d := &Driver{opts: opts}
	interceptors := append([]grpc.UnaryServerInterceptor{logCalls}, opts.Interceptors...)
	d.srv = grpc.NewServer(grpc.ChainUnaryInterceptor(interceptors...))
	csi.RegisterIdentityServer(d.srv, &identity{})
	if opts.Controller != nil {
		csi.RegisterControllerServer(d.srv, opts.Controller)
	}
	if opts.Node != nil {
		csi.RegisterNodeServer(d.srv, opts.Node)
	}
	return d, nil
}

// Run serves until ctx is done, then stops gracefully.
func (d *Driver) Run(ctx context.Context) error {
	lis, err := listen(d.opts.Endpoint)
	if err != nil {
		return err
	}
	klog.InfoS("Serving CSI", "endpoint", d.opts.Endpoint, "controller", d.opts.Controller != nil, "node", d.opts.Node != nil, "version", version)
	errc := make(chan error, 1)
	go func() { errc <- d.srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		stopped := make(chan struct{})
		go func() { d.srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			d.srv.Stop()
		}
		return nil
	}
}

// ParseEndpoint checks an endpoint and returns its network ("unix" or
// "tcp") and address; the command calls it before anything starts.
func ParseEndpoint(endpoint string) (network, address string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("invalid endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if u.Host != "" { // unix://relative/path
			path = filepath.Join(u.Host, path)
		}
		if path == "" {
			return "", "", fmt.Errorf("endpoint %q: a unix socket needs a path, e.g. unix:///csi/csi.sock", endpoint)
		}
		return "unix", path, nil
	case "tcp":
		// CSI has no authentication: whoever reaches the port can create,
		// attach and delete volumes. Loopback only (a sidecar in the pod).
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", "", fmt.Errorf("endpoint %q: CSI over TCP has no authentication, so only a loopback address is allowed (tcp://127.0.0.1:PORT); use a unix socket otherwise", endpoint)
		}
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("endpoint %q: scheme must be unix:// or tcp://", endpoint)
}

// listen opens a unix socket or a loopback TCP port.
func listen(endpoint string) (net.Listener, error) {
	network, address, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.MkdirAll(filepath.Dir(address), 0o750); err != nil {
			return nil, err
		}
		if err := clearStaleSocket(address); err != nil {
			return nil, err
		}
	}
	return net.Listen(network, address)
}

// clearStaleSocket removes a socket a previous run left at path. Anything
// else there is not ours to remove, and a socket that still answers belongs
// to a running process: both are errors, so two plugins never share an
// endpoint and a typo never deletes a file.
func clearStaleSocket(path string) error {
	st, err := os.Lstat(path)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return err
	case st.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("endpoint %s exists and is not a socket (%s); refusing to remove it: choose another --endpoint or remove it by hand", path, st.Mode().Type())
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("endpoint %s is served by another process; stop it first, or choose another --endpoint", path)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

// logCalls logs each call's method, outcome and duration; failures at the
// default level, successes at -v=2. Requests are not logged whole: they can
// carry secrets.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	if err != nil {
		klog.ErrorS(err, "CSI call failed", "method", method, "code", status.Code(err), "duration", time.Since(start))
	} else {
		klog.V(2).InfoS("CSI call", "method", method, "duration", time.Since(start))
	}
	return resp, err
}
