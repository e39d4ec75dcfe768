// Command cloudsigma-sim serves a simulated CloudSigma API 2.0 (see package
// sim) for manual testing, demos and end-to-end suites.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cloudsigma-sim:", err)
		os.Exit(1)
	}
}

type options struct {
	listen string
	cfg    cloudsim.Config
	qemu   cloudsim.QEMUGuest
	// nodeArgs: the guest's node plugin flags, comma separated
	nodeArgs string
	// qemuServers: --guest-qemu-server, server UUID -> serial form
	qemuServers map[string]string
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("cloudsigma-sim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: cloudsigma-sim [flags]\n\nServes a simulated CloudSigma API at http://LISTEN/api/2.0/.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	c := &o.cfg
	d := &c.Delays
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&c.Username, "username", os.Getenv("CLOUDSIGMA_USERNAME"), "API user (HTTP Basic); default $CLOUDSIGMA_USERNAME")
	fs.StringVar(&c.Password, "password", os.Getenv("CLOUDSIGMA_PASSWORD"), "API password (HTTP Basic); default $CLOUDSIGMA_PASSWORD")
	fs.StringVar(&c.Token, "token", "", "also accept this bearer token (not for uploads)")
	fs.StringVar(&c.LocalServer, "local-server", "", "UUID of a running server created at startup: the machine the simulator runs on")
	fs.StringVar(&c.GuestDevicesDir, "guest-devices", "", "emulate the local server's attached drives as loop devices with by-id links in this directory (root)")
	fs.Func("guest-server", "UUID=DIR: one more running server whose attached drives are loop devices with by-id links in DIR, like --guest-devices for the local server (root; repeat for more)", func(v string) error {
		id, dir, ok := strings.Cut(v, "=")
		if !ok || id == "" || dir == "" {
			return fmt.Errorf("%q: want SERVER-UUID=DIRECTORY", v)
		}
		if c.GuestServers == nil {
			c.GuestServers = map[string]string{}
		}
		if _, dup := c.GuestServers[id]; dup {
			return fmt.Errorf("server %s given twice", id)
		}
		c.GuestServers[id] = dir
		return nil
	})
	fs.Func("guest-serials", "UUID=MODE: what a loop-device guest shows in place of a disk serial: uuid (default; the first 20 characters of the drive UUID), other (a serial naming no drive) or none (repeat for more servers)", func(v string) error {
		id, mode, ok := strings.Cut(v, "=")
		if !ok || id == "" || mode == "" {
			return fmt.Errorf("%q: want SERVER-UUID=uuid|other|none", v)
		}
		if c.GuestSerials == nil {
			c.GuestSerials = map[string]string{}
		}
		c.GuestSerials[id] = mode
		return nil
	})
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for the sparse drive backing files (default: a temporary directory removed on exit)")
	fs.StringVar(&c.Location, "location", "sim", "location name")
	fs.StringVar(&c.Hotplug, "hotplug", cloudsim.HotplugAccept, "a running server's answer to a drives-list change: accept (hot-plug) or ignore (200 and no change, the manual's rule for running servers)")
	fs.DurationVar(&d.Create, "create-delay", 200*time.Millisecond, "time a new drive stays in creating")
	fs.DurationVar(&d.Clone, "clone-delay", 500*time.Millisecond, "time a clone keeps source and copy in cloning_src/cloning_dst")
	fs.DurationVar(&d.Resize, "resize-delay", 300*time.Millisecond, "time a drive stays in resizing")
	fs.DurationVar(&d.Snapshot, "snapshot-delay", 300*time.Millisecond, "time a new snapshot stays in creating")
	fs.DurationVar(&d.Delete, "delete-delay", 200*time.Millisecond, "time between an accepted DELETE and the object disappearing")
	fs.DurationVar(&d.Detach, "detach-delay", 500*time.Millisecond, "time a drive removed from a server stays mounted")
	fs.DurationVar(&d.ServerUpdate, "server-update-delay", 50*time.Millisecond, "time a server PUT/start/stop keeps the server busy (overlapping PUTs get 503)")
	fs.DurationVar(&d.GuestAppear, "guest-appear-delay", 0, "extra time before an attached drive's guest device appears")
	fs.DurationVar(&d.Call, "call-latency", 0, "added before every API answer (a network round trip)")
	fs.BoolVar(&c.EnforceRateLimits, "enforce-rate-limits", false, "answer 429 beyond the documented 10000 calls/min (DELETE 1000/min)")
	q := &o.qemu
	fs.StringVar(&q.ImageDir, "guest-qemu", "", "make the local server a real Linux guest under QEMU, from this image directory (hack/guest-image.sh OUT_DIR); excludes --guest-devices")
	fs.StringVar(&q.Dir, "guest-dir", "", "the QEMU guest's sockets and logs, csi.sock among them (default: a temporary directory)")
	fs.StringVar(&q.Accel, "guest-accel", "auto", "the QEMU guest's accelerator: auto (KVM where a kernel boots under it, else TCG), kvm or tcg")
	fs.IntVar(&q.MemoryMiB, "guest-memory", 512, "the QEMU guest's memory in MiB")
	fs.StringVar(&q.Serial, "guest-serial", cloudsim.SerialVirtio, "serial of the QEMU guest's disks: virtio (first 20 characters of the drive UUID), hex (first 20 hex digits), other (QM00001, QM00002...: names no drive) or none")
	fs.StringVar(&o.nodeArgs, "guest-node-args", "", "extra flags of the node plugin in the QEMU guest, comma separated, e.g. --location=sim,-v=4")
	fs.Func("guest-qemu-server", "UUID[=SERIAL]: one more running server that is a QEMU guest like the local server's (same image, accelerator, memory, node args; its own directory under --guest-dir), its disks' serial form SERIAL (default virtio); repeat for more", func(v string) error {
		id, serial, _ := strings.Cut(v, "=")
		if id == "" {
			return fmt.Errorf("%q: want SERVER-UUID[=virtio|hex|none]", v)
		}
		if o.qemuServers == nil {
			o.qemuServers = map[string]string{}
		}
		if _, dup := o.qemuServers[id]; dup {
			return fmt.Errorf("server %s given twice", id)
		}
		o.qemuServers[id] = serial
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.Username == "" || c.Password == "" {
		return nil, errors.New("--username and --password (or CLOUDSIGMA_USERNAME and CLOUDSIGMA_PASSWORD) are required")
	}
	if q.ImageDir != "" {
		if o.nodeArgs != "" {
			q.NodeArgs = strings.Split(o.nodeArgs, ",")
		}
		c.QEMU = q
	}
	if len(o.qemuServers) > 0 && q.ImageDir == "" {
		return nil, errors.New("--guest-qemu-server needs --guest-qemu (the image its guest boots)")
	}
	for id, serial := range o.qemuServers {
		g := *q
		g.Serial = serial
		if q.Dir != "" {
			g.Dir = filepath.Join(q.Dir, id)
		}
		if c.QEMUServers == nil {
			c.QEMUServers = map[string]cloudsim.QEMUGuest{}
		}
		c.QEMUServers[id] = g
	}
	return o, nil
}

// run serves until ctx ends; onListen, if set, learns the bound address.
func run(ctx context.Context, args []string, logOut io.Writer, onListen func(addr string)) error {
	o, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	logger := log.New(logOut, "cloudsigma-sim: ", log.LstdFlags|log.Lmicroseconds)
	s, err := cloudsim.New(o.cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			logger.Printf("closing: %v", err)
		}
	}()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: logCalls(logger, s.Handler()), ReadHeaderTimeout: 30 * time.Second}
	logger.Printf("serving http://%s/api/2.0/ for user %s (data in %s)", ln.Addr(), o.cfg.Username, s.DataDir())
	if o.cfg.LocalServer != "" {
		logger.Printf("local server %s (guest devices: %q)", o.cfg.LocalServer, o.cfg.GuestDevicesDir)
	}
	for id, dir := range o.cfg.GuestServers {
		logger.Printf("guest server %s (guest devices: %q)", id, dir)
	}
	if info, ok := s.GuestInfo(); ok {
		logger.Printf("local server is a QEMU guest (%s: %s): console %s, node plugin CSI at %s",
			info.Accel, info.AccelReason, info.ConsoleLog, s.GuestCSIEndpoint())
	}
	for id := range o.cfg.QEMUServers {
		info, _ := s.GuestInfoOf(id)
		logger.Printf("server %s is a QEMU guest: console %s, node plugin CSI at %s", id, info.ConsoleLog, s.GuestCSIEndpointOf(id))
	}
	if onListen != nil {
		onListen(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// logCalls logs method, path, status and duration of every call.
func logCalls(logger *log.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			logger.Printf("%s %s %d %s", r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond))
		}()
		h.ServeHTTP(rec, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Hijack for reset faults.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
