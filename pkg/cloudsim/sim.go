// Package cloudsim simulates the CloudSigma API 2.0 over HTTP, faithfully
// enough that a client which passes against it survives the real cloud:
// documented response shapes (including the odd ones), asynchronous status
// transitions, full-definition PUT semantics, asynchronous detach, 503 on
// concurrent server updates, pagination that defaults to 20, sparse backing
// files and, as root, the drives attached to one server emulated as loop
// devices.
//
// The layers: Sim is the public face (configuration, test levers); api
// (http*.go) turns requests into calls of the store; store (store*.go)
// holds the account's state under one lock.
package cloudsim

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"
	"k8s.io/klog/v2"
)

const apiPrefix = "/api/2.0/"

// Delays are the durations of the asynchronous transitions.
type Delays struct {
	Create       time.Duration // creating -> unmounted
	Clone        time.Duration // cloning_src/cloning_dst -> unmounted/mounted
	Resize       time.Duration // resizing -> unmounted/mounted
	Snapshot     time.Duration // snapshot creating -> available
	Delete       time.Duration // DELETE accepted -> object gone
	Detach       time.Duration // drive removed from a server -> no longer mounted
	ServerUpdate time.Duration // a server PUT/start/stop keeps the server busy this long
	GuestAppear  time.Duration // extra delay before an attached drive's guest device appears
	// Call is added before every answer: the network round trip to the
	// API, which benchmarks compare each operation's time against.
	Call time.Duration
}

// Config configures a simulator.
type Config struct {
	Username, Password string
	Token              string // optional bearer token (not accepted for uploads)
	// LocalServer is the UUID of a running server created at startup ("the
	// machine we run on"); empty = none.
	LocalServer string
	// GuestDevicesDir, if set, emulates the LocalServer's attached drives as
	// loop devices with by-id style links in this directory (needs root).
	GuestDevicesDir string
	// QEMU, if set, makes the LocalServer a real Linux guest instead
	// (QEMUGuest); it excludes GuestDevicesDir.
	QEMU *QEMUGuest
	// QEMUServers are more running servers created at startup, server
	// UUID -> its guest, each a QEMU guest like the LocalServer with QEMU
	// (its own Dir, Serial and NodeArgs): nodes on real guest kernels, so
	// a volume can move between them.
	QEMUServers map[string]QEMUGuest
	// GuestServers are more running servers created at startup, server
	// UUID -> directory, each with its attached drives emulated like the
	// LocalServer's with GuestDevicesDir: more nodes on this machine, so a
	// volume can move between them.
	GuestServers map[string]string
	// GuestSerials is the serial mode of a loop-device guest, server UUID
	// -> virtio.GuestSerialUUID (default), GuestSerialOther or
	// GuestSerialNone: what the node sees in place of a disk serial.
	GuestSerials map[string]string
	DataDir      string // backing files; "" = temp dir removed on Close
	Delays       Delays
	Capabilities *Capabilities // nil = DefaultCapabilities()
	// EnforceRateLimits applies the documented limits (10000/min, DELETE
	// 1000/min) and answers 429 beyond them.
	EnforceRateLimits        bool
	RateLimitPerMinute       int    // 0 = 10000
	DeleteRateLimitPerMinute int    // 0 = 1000
	Location                 string // informational, e.g. "sim"
	// Hotplug is what a running server does with a change to its drives
	// list: HotplugAccept (default) plugs and unplugs virtio drives, as
	// public users report; HotplugIgnore answers 200 and changes nothing,
	// the manual's literal rule (11.5: a running server takes only name,
	// meta and tags).
	Hotplug string
}

// Hotplug modes.
const (
	HotplugAccept = "accept"
	HotplugIgnore = "ignore"
)

// Sim is one simulated CloudSigma account.
type Sim struct {
	st         *store
	api        *api
	guests     map[string]*guest   // server UUID -> loop-device guest
	vms        map[string]*vmGuest // server UUID -> QEMU guest
	ownDataDir bool
	faults     faultSet
	calls      callLog
}

// New starts a simulator. Close it to release backing files and loop devices.
func New(cfg Config) (*Sim, error) {
	caps := DefaultCapabilities()
	if cfg.Capabilities != nil {
		caps = cfg.Capabilities.clone()
	}
	switch cfg.Hotplug {
	case "", HotplugAccept, HotplugIgnore:
	default:
		return nil, fmt.Errorf("hotplug %q: want %s or %s", cfg.Hotplug, HotplugAccept, HotplugIgnore)
	}
	if cfg.QEMU != nil && cfg.GuestDevicesDir != "" {
		return nil, errors.New("a QEMU guest and loop-device guest devices exclude each other")
	}
	if cfg.QEMU != nil && cfg.LocalServer == "" {
		return nil, errors.New("a QEMU guest needs a local server")
	}
	for id := range cfg.QEMUServers {
		if _, ok := cfg.GuestServers[id]; ok {
			return nil, fmt.Errorf("server %s is both a QEMU guest and a loop-device guest server: choose one", id)
		}
	}
	if _, ok := caps.Drives[caps.DefaultStorageType]; !ok {
		return nil, fmt.Errorf("default storage type %q is not in the capabilities", caps.DefaultStorageType)
	}
	s := &Sim{}
	s.faults.init()
	dataDir := cfg.DataDir
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "cloudsigma-sim-")
		if err != nil {
			return nil, err
		}
		dataDir, s.ownDataDir = dir, true
	} else {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, err
		}
		dataDir = abs
	}
	if cfg.LocalServer != "" {
		if _, err := uuid.Parse(cfg.LocalServer); err != nil {
			s.removeDataDir(dataDir)
			return nil, fmt.Errorf("local server %q is not a UUID", cfg.LocalServer)
		}
	}
	if err := s.startGuests(cfg); err != nil {
		s.removeDataDir(dataDir)
		return nil, err
	}
	vms, err := newVMGuests(cfg)
	if err != nil {
		s.closeGuests()
		s.removeDataDir(dataDir)
		return nil, err
	}
	s.vms = vms
	owner := uuid.NewSHA1(uuid.NameSpaceURL, []byte("cloudsigma-sim:"+cfg.Username)).String()
	s.st = newStore(dataDir, owner, caps, cfg, s.guests, s.vms)
	s.api = newAPI(s.st, cfg)
	if cfg.LocalServer != "" {
		s.st.addServer(cfg.LocalServer, "local-server", true)
	}
	for _, id := range slices.Sorted(maps.Keys(cfg.GuestServers)) {
		s.st.addServer(id, "guest-server-"+id[:8], true)
	}
	for _, id := range slices.Sorted(maps.Keys(cfg.QEMUServers)) {
		s.st.addServer(id, "qemu-server-"+id[:8], true)
	}
	// The guests' servers run: they boot now. Where QEMU cannot start, New
	// fails with the reason.
	if err := s.bootVMs(); err != nil {
		s.st.close()
		s.closeGuests()
		s.removeDataDir(dataDir)
		return nil, err
	}
	return s, nil
}

// Close stops pending transitions, detaches every loop device the simulator
// made, shuts a QEMU guest down and removes its own temporary data
// directory.
func (s *Sim) Close() error {
	if !s.st.close() {
		return nil
	}
	errs := []error{s.closeGuests(), s.removeDataDir(s.st.dataDir)}
	return errors.Join(errs...)
}

// closeGuests detaches the loop devices and shuts the QEMU guests down.
func (s *Sim) closeGuests() error {
	var errs []error
	for _, g := range s.guests {
		errs = append(errs, g.closeAll())
	}
	for _, g := range s.vms {
		errs = append(errs, g.close())
	}
	return errors.Join(errs...)
}

func (s *Sim) removeDataDir(dir string) error {
	if !s.ownDataDir {
		return nil
	}
	return os.RemoveAll(dir)
}

// Handler serves /api/2.0/... plus the download URLs it redirects to.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP logs the call and applies injected faults around the API.
func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	logCall := func(status int) {
		s.calls.add(Call{
			Time: start, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Status: status, Duration: time.Since(start),
		})
	}
	rec := &recorder{ResponseWriter: w, onStatus: logCall}
	rec.Header().Set("X-REQUEST-ID", uuid.NewString())
	if rtt := s.st.delays.Call; rtt > 0 {
		t := time.NewTimer(rtt)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			logCall(0)
			return
		}
	}
	s.serveWithFaults(rec, r)
	if !rec.wrote { // a handler that wrote nothing (connection dropped by a fault)
		logCall(0)
	}
}

func logf(format string, args ...any) { klog.InfofDepth(1, "cloudsigma-sim: "+format, args...) }
