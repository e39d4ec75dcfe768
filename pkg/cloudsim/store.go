package cloudsim

import (
	"path/filepath"
	"sync"
	"time"
)

// store is the simulated account: every object, the one lock over them and
// the timers that move objects through their asynchronous states.
//
// Its rules keep the locking checkable by eye:
//   - a method that touches the objects either takes st.mu itself and
//     releases it by defer, or is named ...Locked and expects its caller to
//     hold it; two-step operations (clone, snapshot, upload, server PUT)
//     call such methods in turn and do the slow part between them;
//   - nothing that waits runs under the lock: data copies, uploads, the
//     server update sleep, loop-device and QEMU guest work. What a locked step leaves
//     to do (file removal, guest devices) is returned as funcs that run once
//     the lock is released. Creating, growing and opening a backing file
//     are quick and stay under it, so a drive never exists without its file;
//   - a later transition (create, clone, resize, delete, detach, ...) is a
//     timer that calls a store method when it fires.
type store struct {
	// Set by newStore, read-only afterwards: no lock needed.
	dataDir     string
	owner       string // user UUID
	caps        *Capabilities
	delays      Delays
	localServer string
	guests      map[string]*guest   // server UUID -> its loop-device guest; fixed at start
	vms         map[string]*vmGuest // server UUID -> its QEMU guest; fixed at start
	hotplugOff  bool                // Config.Hotplug == HotplugIgnore

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

func newStore(dataDir, owner string, caps *Capabilities, cfg Config, guests map[string]*guest, vms map[string]*vmGuest) *store {
	return &store{
		dataDir: dataDir, owner: owner, caps: caps, delays: cfg.Delays,
		localServer: cfg.LocalServer, guests: guests, vms: vms, hotplugOff: cfg.Hotplug == HotplugIgnore,
		drives:    map[string]*drive{},
		snapshots: map[string]*snapshot{},
		servers:   map[string]*server{},
		jobs:      map[string]*job{},
		tags:      map[string]*tag{},
		downloads: map[string]download{},
		timers:    map[*timerEntry]struct{}{},
	}
}

type timerEntry struct{ t *time.Timer }

// afterLocked runs fn once d has passed, unless the store has closed by
// then. fn runs without the lock and reaches the state through store
// methods. Caller holds st.mu.
func (st *store) afterLocked(d time.Duration, fn func()) {
	if st.closed {
		return
	}
	e := &timerEntry{}
	st.timers[e] = struct{}{}
	st.timerWG.Add(1)
	e.t = time.AfterFunc(d, func() {
		defer st.timerWG.Done()
		if st.claimTimer(e) {
			fn()
		}
	})
}

// claimTimer takes a fired timer off the books; false when close stopped
// it first.
func (st *store) claimTimer(e *timerEntry) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.timers[e]; !ok || st.closed {
		return false
	}
	delete(st.timers, e)
	return true
}

// close stops pending transitions and waits for those already running;
// false if the store was closed before.
func (st *store) close() bool {
	if !st.markClosed() {
		return false
	}
	st.timerWG.Wait()
	return true
}

func (st *store) markClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	st.closed = true
	for e := range st.timers {
		if e.t.Stop() {
			st.timerWG.Done() // its func will never run
		}
		delete(st.timers, e)
	}
	return true
}

// nextSeqLocked orders objects by creation for stable listings.
func (st *store) nextSeqLocked() int64 {
	st.seq++
	return st.seq
}

func (st *store) drivePath(id string) string { return filepath.Join(st.dataDir, id+".img") }

func (st *store) snapPath(id string) string { return filepath.Join(st.dataDir, id+".snap") }

func (st *store) userRef() map[string]any {
	return map[string]any{"resource_uri": "/api/2.0/user/" + st.owner + "/", "uuid": st.owner}
}

func ref(kind, id string) map[string]any {
	return map[string]any{"resource_uri": uri(kind, id), "uuid": id}
}

func uri(kind, id string) string { return apiPrefix + kind + "/" + id + "/" }

// locked runs fn with st.mu held. It serves the methods that have work to
// do after the lock (see runAll): fn sets their results, they run the rest.
func (st *store) locked(fn func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	fn()
}

// runAll runs the work a locked step left for after the lock.
func runAll(posts []func()) {
	for _, p := range posts {
		if p != nil {
			p()
		}
	}
}
