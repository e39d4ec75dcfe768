package node

import "sync"

// volumeLocks lets one operation per volume run at a time. A second one is
// refused at once (Aborted) rather than queued: the kubelet retries, and
// operations on other volumes never wait (no node-wide lock).
type volumeLocks struct {
	mu   sync.Mutex
	held map[string]bool
}

// tryLock takes the volume's lock, or returns errBusy.
func (l *volumeLocks) tryLock(volumeID string) (unlock func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[volumeID] {
		return nil, failf(errBusy, "volume %s", volumeID)
	}
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[volumeID] = true
	return func() {
		l.mu.Lock()
		delete(l.held, volumeID)
		l.mu.Unlock()
	}, nil
}
