package cloudsim

import (
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
