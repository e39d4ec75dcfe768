// Package inflight refuses a second concurrent operation on the same object,
// as the CSI spec asks ("an operation pending for the specified volume":
// ABORTED); the caller (sidecar or kubelet) retries with backoff. It never
// blocks, so one slow volume cannot hold up others, and there is no global
// lock. Both the controller and the node service use it.
package inflight

import (
	"errors"
	"fmt"
	"sync"
)

// ErrBusy: an operation on the key is already in progress. Each service's
// error table maps it to codes.Aborted.
var ErrBusy = errors.New("another operation is already in progress")

// Key names one object an operation works on. Keys of different kinds never
// collide, even when their identifiers are equal.
type Key struct {
	kind string
	id   string
}

func (k Key) String() string { return k.kind + " " + k.id }

// Volume is a volume by its id (a drive UUID).
func Volume(id string) Key { return Key{"volume", id} }

// VolumeName is a volume by its CreateVolume request name.
func VolumeName(name string) Key { return Key{"volume name", name} }

// Snapshot is a snapshot by its id.
func Snapshot(id string) Key { return Key{"snapshot", id} }

// SnapshotName is a snapshot by its CreateSnapshot request name.
func SnapshotName(name string) Key { return Key{"snapshot name", name} }

// Locks holds the keys of the operations in progress. The zero value is
// ready to use.
type Locks struct {
	mu   sync.Mutex
	held map[Key]bool
}

// Acquire takes every key or none, and returns the function that releases
// them. A key already held gives an error wrapping ErrBusy that names it.
func (l *Locks) Acquire(keys ...Key) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if l.held[k] {
			return nil, fmt.Errorf("%w on %s", ErrBusy, k)
		}
	}
	if l.held == nil {
		l.held = map[Key]bool{}
	}
	for _, k := range keys {
		l.held[k] = true
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, k := range keys {
			delete(l.held, k)
		}
	}, nil
}
