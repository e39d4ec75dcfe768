package cloudsim

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault makes matching calls fail or slow down.
type Fault struct {
	Method     string // "" = any
	PathPrefix string // below /api/2.0, e.g. "/servers/"; "" = any
	// Status answers with this status and an error array body (503 carries
	// error_type concurrency, 500 backend, ...).
	Status int
	// ResetConn hijacks and resets the connection instead of answering.
	ResetConn bool
	// Rate is the probability per matching call; 0 means every call.
	Rate float64
	// Count fails the next Count matching calls; 0 = unlimited.
	Count int
	// Latency is added before answering; alone (Status 0, no reset) it
	// only slows matching calls down.
	Latency time.Duration
	// After lets the request take effect before failing it: the response
	// is lost, as when a connection drops after the server committed.
	After bool
}

func (f *Fault) fails() bool { return f.Status != 0 || f.ResetConn }

type faultState struct {
	Fault
	hits int
}

type faultSet struct {
	mu     sync.Mutex
	faults []*faultState
	rnd    *rand.Rand
	stats  FaultStats
}

// FaultStats counts what the injected faults did to calls, since the start.
type FaultStats struct {
	Failed  int // answered with an injected error or reset, the request not applied
	Lost    int // applied, then the answer lost (After)
	Delayed int // slowed down by an injected latency
}

// FaultStats reports what injected faults have done so far; ClearFaults
// keeps the counts.
func (s *Sim) FaultStats() FaultStats {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.stats
}

func (fs *faultSet) init() { fs.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

// InjectFault adds a fault; faults apply in the order they were added.
func (s *Sim) InjectFault(f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = append(s.faults.faults, &faultState{Fault: f})
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = nil
}

// pick decides what happens to one call: total added latency and the first
// failing fault, if any.
func (fs *faultSet) pick(method, path string) (time.Duration, *Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	rel := "/" + strings.TrimPrefix(path, apiPrefix)
	var latency time.Duration
	var fail *Fault
	kept := fs.faults[:0]
	for _, f := range fs.faults {
		matches := (f.Method == "" || strings.EqualFold(f.Method, method)) &&
			strings.HasPrefix(rel, f.PathPrefix)
		if matches && (f.Rate <= 0 || fs.rnd.Float64() < f.Rate) && (fail == nil || !f.fails()) {
			latency += f.Latency
			if f.fails() {
				ff := f.Fault
				fail = &ff
			}
			f.hits++
		}
		if f.Count == 0 || f.hits < f.Count {
			kept = append(kept, f)
		}
	}
	fs.faults = kept
	switch {
	case fail != nil && fail.After:
		fs.stats.Lost++
	case fail != nil:
		fs.stats.Failed++
	}
	if latency > 0 {
		fs.stats.Delayed++
	}
	return latency, fail
}

func (s *Sim) serveWithFaults(w *recorder, r *http.Request) {
	latency, fail := s.faults.pick(r.Method, r.URL.Path)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fail == nil {
		s.api.serve(w, r)
		return
	}
	if fail.After {
		s.api.serve(&discardWriter{h: http.Header{}}, r)
	}
	if fail.ResetConn {
		resetConn(w)
		return
	}
	writeError(w, newErr(fail.Status, errorTypeFor(fail.Status), "", "Injected fault (%d)", fail.Status))
}

// resetConn closes the connection with a TCP reset where possible.
func resetConn(w *recorder) {
	conn, _, err := w.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
