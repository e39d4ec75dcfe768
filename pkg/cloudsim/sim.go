// Package sim simulates the CloudSigma API 2.0 over HTTP, faithfully enough
// that a client which passes against it survives the real cloud: documented
// response shapes (including the odd ones), asynchronous status transitions,
// full-definition PUT semantics, asynchronous detach, 503 on concurrent
// server updates, pagination that defaults to 20, sparse backing files and,
// as root, the drives attached to one server emulated as loop devices.
package cloudsim

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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
	DataDir         string // backing files; "" = temp dir removed on Close
	Delays          Delays
	Capabilities    *Capabilities // nil = DefaultCapabilities()
	// EnforceRateLimits applies the documented limits (10000/min, DELETE
	// 1000/min) and answers 429 beyond them.
	EnforceRateLimits        bool
	RateLimitPerMinute       int    // 0 = 10000
	DeleteRateLimitPerMinute int    // 0 = 1000
	Location                 string // informational, e.g. "sim"
}

// Sim is one simulated CloudSigma account.
type Sim struct {
	cfg        Config
	caps       *Capabilities
	dataDir    string
	ownDataDir bool
	owner      string // user UUID
	guest      *guest
	faults     faultSet
	calls      callLog
	limits     *rateLimits

	mu        sync.Mutex
	closed    bool
	seq       int64
	drives    map[string]*drive
	snapshots map[string]*snapshot
	servers   map[string]*server
	jobs      map[string]*job
	tags      map[string]*tag
	downloads map[string]download
	timers    map[*timerEntry]struct{}
	timerWG   sync.WaitGroup
}

// New starts a simulator. Close it to release backing files and loop devices.
func New(cfg Config) (*Sim, error) {
	s := &Sim{
		cfg:       cfg,
		drives:    map[string]*drive{},
		snapshots: map[string]*snapshot{},
		servers:   map[string]*server{},
		jobs:      map[string]*job{},
		tags:      map[string]*tag{},
		downloads: map[string]download{},
		timers:    map[*timerEntry]struct{}{},
	}
	if cfg.Capabilities != nil {
		s.caps = cfg.Capabilities.clone()
	} else {
		s.caps = DefaultCapabilities()
	}
	if _, ok := s.caps.Drives[s.caps.DefaultStorageType]; !ok {
		return nil, fmt.Errorf("default storage type %q is not in the capabilities", s.caps.DefaultStorageType)
	}
	s.owner = uuid.NewSHA1(uuid.NameSpaceURL, []byte("cloudsigma-sim:"+cfg.Username)).String()
	if cfg.EnforceRateLimits {
		s.limits = newRateLimits(cfg.RateLimitPerMinute, cfg.DeleteRateLimitPerMinute)
	}
	s.faults.init()
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "cloudsigma-sim-")
		if err != nil {
			return nil, err
		}
		s.dataDir, s.ownDataDir = dir, true
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.dataDir = abs
	}
	if cfg.GuestDevicesDir != "" {
		g, err := newGuest(cfg.GuestDevicesDir)
		if err != nil {
			s.removeDataDir()
			return nil, err
		}
		s.guest = g
	}
	if cfg.LocalServer != "" {
		if _, err := uuid.Parse(cfg.LocalServer); err != nil {
			s.removeDataDir()
			return nil, fmt.Errorf("local server %q is not a UUID", cfg.LocalServer)
		}
		s.mu.Lock()
		s.addServer(cfg.LocalServer, "local-server", true)
		s.mu.Unlock()
	}
	return s, nil
}

// Close stops pending transitions, detaches every loop device the simulator
// made and removes its own temporary data directory.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for e := range s.timers {
		if e.t.Stop() {
			s.timerWG.Done()
		}
		delete(s.timers, e)
	}
	s.mu.Unlock()
	s.timerWG.Wait()
	var errs []error
	if s.guest != nil {
		errs = append(errs, s.guest.closeAll())
	}
	errs = append(errs, s.removeDataDir())
	return errors.Join(errs...)
}

func (s *Sim) removeDataDir() error {
	if !s.ownDataDir {
		return nil
	}
	return os.RemoveAll(s.dataDir)
}

// Handler serves /api/2.0/... plus the download URLs it redirects to.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

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
	s.serveWithFaults(rec, r)
	if !rec.wrote { // a handler that wrote nothing (connection dropped by a fault)
		logCall(0)
	}
}

// serve is the simulated API behind the fault layer.
func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	if token, ok := downloadToken(r.URL.Path); ok {
		s.serveDownload(w, r, token)
		return
	}
	if len(r.URL.Path) < len(apiPrefix) || r.URL.Path[:len(apiPrefix)] != apiPrefix {
		writeError(w, errNotExist("No API at %s", r.URL.Path))
		return
	}
	if s.limits != nil && !s.limits.allow(r.Method) {
		writeError(w, newErr(http.StatusTooManyRequests, "permission", "", "Request rate limit exceeded"))
		return
	}
	if r.Method == http.MethodOptions {
		s.serveOptions(w, r)
		return
	}
	if e := s.authenticate(r); e != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="users"`)
		writeError(w, e)
		return
	}
	if e := checkAccept(r); e != nil {
		writeError(w, e)
		return
	}
	if e := s.route(w, r); e != nil {
		writeError(w, e)
	}
}

// after runs fn with s.mu held once d has passed, unless the simulator has
// closed by then; fn may return work to run after the lock is released
// (loop devices, file removal). The caller holds s.mu.
func (s *Sim) after(d time.Duration, fn func() (post func())) {
	if s.closed {
		return
	}
	e := &timerEntry{}
	s.timers[e] = struct{}{}
	s.timerWG.Add(1)
	e.t = time.AfterFunc(d, func() {
		defer s.timerWG.Done()
		s.mu.Lock()
		if _, ok := s.timers[e]; !ok || s.closed {
			s.mu.Unlock()
			return
		}
		delete(s.timers, e)
		post := fn()
		s.mu.Unlock()
		if post != nil {
			post()
		}
	})
}

type timerEntry struct{ t *time.Timer }

// nextSeq orders objects by creation for stable listings. Caller holds s.mu.
func (s *Sim) nextSeq() int64 {
	s.seq++
	return s.seq
}

func (s *Sim) userRef() map[string]any {
	return map[string]any{"resource_uri": "/api/2.0/user/" + s.owner + "/", "uuid": s.owner}
}

func ref(kind, id string) map[string]any {
	return map[string]any{"resource_uri": uri(kind, id), "uuid": id}
}

func uri(kind, id string) string { return apiPrefix + kind + "/" + id + "/" }

// runAll runs deferred work collected under the lock.
func runAll(posts []func()) {
	for _, p := range posts {
		if p != nil {
			p()
		}
	}
}

func logf(format string, args ...any) { klog.InfofDepth(1, "cloudsigma-sim: "+format, args...) }
