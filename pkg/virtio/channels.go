package virtio

import (
	"fmt"
	"strconv"
	"strings"
)

// Channels describes the virtio device channels ("controller:unit") the
// driver may use on a server. The manual allows units 0..5 per controller;
// other clients use 0..3, so both limits are configurable. The node plugin
// reports MaxVolumes() so the scheduler's attach limit matches what the
// allocator can actually hand out.
type Channels struct {
	Controllers int // virtio controllers used, numbered from 0
	Units       int // units per controller
}

// DefaultChannels: three controllers of six units (documented limit) = 18.
var DefaultChannels = Channels{Controllers: 3, Units: 6}

// Capacity is the number of channels the allocator can hand out.
func (c Channels) Capacity() int { return c.Controllers * c.Units }

// MaxVolumes is the attach limit to report per node: every channel but one,
// which the boot drive occupies.
func (c Channels) MaxVolumes() int { return max(0, c.Capacity()-1) }

// Validate checks the limits against the API's virtio bounds (units 0..5,
// 1024 drives in all).
func (c Channels) Validate() error {
	if c.Units < 1 || c.Units > 6 {
		return fmt.Errorf("virtio units per controller must be 1..6, got %d", c.Units)
	}
	if c.Controllers < 1 || c.Capacity() > 1024 {
		return fmt.Errorf("virtio controllers must be at least 1 and at most %d channels in all, got %d controllers", 1024, c.Controllers)
	}
	return nil
}

// Free returns the first channel in controller-major order not in used.
func (c Channels) Free(used map[string]bool) (string, bool) {
	for ctl := 0; ctl < c.Controllers; ctl++ {
		for unit := 0; unit < c.Units; unit++ {
			ch := strconv.Itoa(ctl) + ":" + strconv.Itoa(unit)
			if !used[ch] {
				return ch, true
			}
		}
	}
	return "", false
}

// Normalize turns "00:1" and " 0:1" into "0:1" so comparisons are exact;
// malformed channels are returned unchanged (they still count as used).
func Normalize(ch string) string {
	ctl, unit, ok := strings.Cut(strings.TrimSpace(ch), ":")
	if !ok {
		return ch
	}
	a, err1 := strconv.Atoi(ctl)
	b, err2 := strconv.Atoi(unit)
	if err1 != nil || err2 != nil {
		return ch
	}
	return strconv.Itoa(a) + ":" + strconv.Itoa(b)
}
