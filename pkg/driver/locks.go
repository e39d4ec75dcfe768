package driver

import (
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// inFlight refuses a second concurrent operation on the same key (volume id
// or request name) with Aborted, as the CSI spec asks; the sidecar retries.
// It never blocks, so one slow volume cannot hold up others.
type inFlight struct {
	mu   sync.Mutex
	keys map[string]bool
}

func newInFlight() *inFlight { return &inFlight{keys: map[string]bool{}} }

// acquire locks every key or none; release with the returned func.
func (f *inFlight) acquire(keys ...string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if f.keys[k] {
			return nil, status.Errorf(codes.Aborted, "an operation on %q is already in progress", k)
		}
	}
	for _, k := range keys {
		f.keys[k] = true
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, k := range keys {
			delete(f.keys, k)
		}
	}, nil
}
