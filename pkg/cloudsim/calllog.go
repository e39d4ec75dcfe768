package cloudsim

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// Call is one request the simulator received.
type Call struct {
	Time     time.Time
	Method   string
	Path     string // as received, e.g. /api/2.0/drives/
	Query    string // raw query
	Status   int    // 0 when the connection was reset
	Duration time.Duration
}

// maxCalls bounds the call log of a long-running simulator.
const maxCalls = 100000

type callLog struct {
	mu    sync.Mutex
	calls []Call
}

func (l *callLog) add(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) >= maxCalls {
		l.calls = append(l.calls[:0], l.calls[len(l.calls)-maxCalls/2:]...)
	}
	l.calls = append(l.calls, c)
}

// Calls returns a copy of the call log, oldest first.
func (s *Sim) Calls() []Call {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	return append([]Call(nil), s.calls.calls...)
}

// ResetCalls empties the call log.
func (s *Sim) ResetCalls() {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	s.calls.calls = nil
}

// recorder notes the status and calls onStatus before the response leaves,
// so a client that has its answer always finds the call in the log. It
// passes Hijack through so connection-reset faults work.
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	onStatus func(status int)
}

func (r *recorder) setStatus(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
		if r.onStatus != nil {
			r.onStatus(code)
		}
	}
}

func (r *recorder) WriteHeader(code int) {
	r.setStatus(code)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.setStatus(http.StatusOK)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
