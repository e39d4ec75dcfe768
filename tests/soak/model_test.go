package soak_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
)

// The model is what the workers, like the sidecars of a cluster, know about
// the volumes and snapshots: the ids the driver answered with, where each
// volume is attached, which snapshot a restore comes from. It tells each
// operation which answer is right.
//
// The workers lock an object for the whole of an operation, retries
// included, as a CO does: one operation at a time on a volume, except
// creates by the same name, which run concurrently (the same request from
// several workers); likewise for snapshots. Locks are taken volume first,
// then snapshot. Under its lock an object's state in the model is exact,
// so a refusal is either provably right or a bug.

// volume is one CSI volume name. Its parameters never change while it
// exists: a plain name asks for 1 GiB, a restore name for its bound
// snapshot; the same request again must give the same volume.
type volume struct {
	name    string
	restore bool
	lock    sync.RWMutex // read: create by this name; write: any other operation

	// Under model.mu:
	id       string          // the driver's answer; "" = no volume
	size     int64           // bytes, as the driver last answered
	source   string          // restore names: the bound snapshot id ("" = unbound)
	attached map[string]bool // node -> published (publish answered OK, no unpublish since)
	creating int             // creates in flight
	unknown  bool            // an operation did not converge: state unknown, skipped from then on
}

// snapshot is one CSI snapshot name, bound to its source volume id.
type snapshot struct {
	name string
	lock sync.RWMutex // read: create by this name (and restores from it); write: delete

	// Under model.mu:
	id       string // "" = no snapshot
	source   string // volume id ("" = unbound)
	creating int
	unknown  bool
}

// node counts the volumes that may occupy one of its attach slots, so that
// a ResourceExhausted answer can be checked: every publish in flight keeps
// the highest count of the others seen while it ran.
type node struct {
	possible int // attached, being attached or being detached
	watches  map[*watch]bool
}

type watch struct{ others int }

type model struct {
	mu        sync.Mutex
	vols      []*volume
	snaps     []*snapshot
	nodes     map[string]*node
	nodeIDs   []string
	graveVols []string // ids of deleted volumes
	graveSnap []string // ids of deleted snapshots
}

func newModel(plain, restores, snaps int, nodes []string) *model {
	m := &model{nodes: map[string]*node{}, nodeIDs: nodes}
	for i := range plain {
		m.vols = append(m.vols, &volume{name: fmt.Sprintf("soak-pvc-%d", i), attached: map[string]bool{}})
	}
	for i := range restores {
		m.vols = append(m.vols, &volume{name: fmt.Sprintf("soak-restore-%d", i), restore: true, attached: map[string]bool{}})
	}
	for i := range snaps {
		m.snaps = append(m.snaps, &snapshot{name: fmt.Sprintf("soak-snap-%d", i)})
	}
	for _, n := range nodes {
		m.nodes[n] = &node{watches: map[*watch]bool{}}
	}
	return m
}

func (m *model) plainVolume(r *rand.Rand) *volume {
	for {
		if v := m.vols[r.IntN(len(m.vols))]; !v.restore {
			return v
		}
	}
}

func (m *model) restoreVolume(r *rand.Rand) *volume {
	for {
		if v := m.vols[r.IntN(len(m.vols))]; v.restore {
			return v
		}
	}
}

func (m *model) anyVolume(r *rand.Rand) *volume { return m.vols[r.IntN(len(m.vols))] }

func (m *model) anySnapshot(r *rand.Rand) *snapshot { return m.snaps[r.IntN(len(m.snaps))] }

func (m *model) anyNode(r *rand.Rand) string { return m.nodeIDs[r.IntN(len(m.nodeIDs))] }

// graveVolume is the id of a deleted volume, "" when none was deleted yet.
func (m *model) graveVolume(r *rand.Rand) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.graveVols) == 0 {
		return ""
	}
	return m.graveVols[r.IntN(len(m.graveVols))]
}

func (m *model) graveSnapshot(r *rand.Rand) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.graveSnap) == 0 {
		return ""
	}
	return m.graveSnap[r.IntN(len(m.graveSnap))]
}

// snapshotByID is the snapshot name that holds id now, if any.
func (m *model) snapshotByIDLocked(id string) *snapshot {
	for _, s := range m.snaps {
		if s.id == id && id != "" {
			return s
		}
	}
	return nil
}

// addPossibleLocked changes a node's count and lets every publish in flight
// there see it.
func (m *model) addPossibleLocked(nodeID string, delta int) {
	n := m.nodes[nodeID]
	n.possible += delta
	for w := range n.watches {
		w.others = max(w.others, n.possible-1)
	}
}

// startPublish counts a publish to nodeID as possibly occupying a slot.
func (m *model) startPublish(nodeID string) *watch {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &watch{}
	m.nodes[nodeID].watches[w] = true
	m.addPossibleLocked(nodeID, 1)
	return w
}

// endPublish: attached keeps the slot counted; a refusal frees it; unknown
// (did not converge) keeps it counted for good. It returns the most
// volumes other than this one that the node may have held meanwhile.
func (m *model) endPublish(nodeID string, w *watch, freed bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.nodes[nodeID].watches, w)
	if freed {
		m.addPossibleLocked(nodeID, -1)
	}
	return w.others
}

// detached: an unpublish of a published volume answered OK.
func (m *model) detachedLocked(v *volume, nodeID string) {
	if v.attached[nodeID] {
		delete(v.attached, nodeID)
		m.addPossibleLocked(nodeID, -1)
	}
}

func (v *volume) attachedNodes() []string {
	var out []string
	for n := range v.attached {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
