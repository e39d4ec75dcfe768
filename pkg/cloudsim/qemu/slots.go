package qemu

import (
	"fmt"
	"slices"
)

// slots tracks the hot-plug ports of a q35 guest: one pcie-root-port per
// disk. QEMU answers success to a device_add onto a port that already
// holds a disk, and the guest never sees the new disk; so a port is given
// out only when free, and is free again only once QEMU has reported its
// disk deleted (DEVICE_DELETED), not when device_del was sent.
type slots struct {
	ports []string          // in order: the lowest free port is used first
	used  map[string]string // port -> disk id
}

func newSlots(n int) *slots {
	s := &slots{used: map[string]string{}}
	for i := 0; i < n; i++ {
		s.ports = append(s.ports, fmt.Sprintf("hp%d", i))
	}
	return s
}

// take gives the lowest free port to a disk.
func (s *slots) take(disk string) (string, error) {
	for _, p := range s.ports {
		if _, busy := s.used[p]; !busy {
			s.used[p] = disk
			return p, nil
		}
	}
	return "", fmt.Errorf("all %d hot-plug ports are in use (disks %v)", len(s.ports), s.holders())
}

// release frees a port; only the disk that holds it may free it.
func (s *slots) release(port, disk string) {
	if s.used[port] == disk {
		delete(s.used, port)
	}
}

func (s *slots) free() int { return len(s.ports) - len(s.used) }

func (s *slots) holders() []string {
	out := make([]string, 0, len(s.used))
	for _, d := range s.used {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
