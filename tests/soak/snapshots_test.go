package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// snapshot takes a snapshot by a name other workers use too. A name stays
// bound to its source volume until the snapshot is deleted, so a repeated
// create is the same request.
func (s *soak) snapshot(r *rand.Rand) bool {
	v, sn := s.m.anyVolume(r), s.m.anySnapshot(r)
	v.lock.RLock()
	defer v.lock.RUnlock()
	sn.lock.RLock()
	defer sn.lock.RUnlock()
	s.m.mu.Lock()
	if sn.unknown {
		s.m.mu.Unlock()
		return false
	}
	want := codes.OK
	switch {
	case sn.id != "": // exists: found by name, whatever became of its volume
	case sn.source == "":
		if v.id == "" || v.unknown {
			s.m.mu.Unlock()
			return false
		}
		sn.source = v.id
	case sn.source == v.id && !v.unknown: // another create of it in flight, or failed
	case slices.Contains(s.m.graveVols, sn.source):
		want = codes.NotFound // its volume was deleted before it was taken
	default: // bound to a volume this worker has not locked
		s.m.mu.Unlock()
		return false
	}
	src, existing := sn.source, sn.id
	sn.creating++
	s.m.mu.Unlock()

	var snap *csi.Snapshot
	err, ok := s.converge("snapshot", func(ctx context.Context) error {
		resp, err := s.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: sn.name, SourceVolumeId: src})
		snap = resp.GetSnapshot()
		return err
	})
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	sn.creating--
	what := fmt.Sprintf("snapshot %s of %s (existing %q)", sn.name, src, existing)
	if !ok || !s.expect("snapshot", err, what, want) {
		sn.unknown = true
		return true
	}
	if err != nil {
		if sn.id == "" && sn.creating == 0 {
			sn.source = ""
		}
		return true
	}
	id := snap.GetSnapshotId()
	switch {
	case sn.id != "" && sn.id != id:
		s.st.outcome("snapshot", codes.OK, false, fmt.Sprintf("%s: answered %s, an earlier create answered %s", what, id, sn.id))
		sn.unknown = true
	case snap.GetSourceVolumeId() != src:
		s.st.outcome("snapshot", codes.OK, false, fmt.Sprintf("%s: answered source volume %s", what, snap.GetSourceVolumeId()))
	}
	if sn.id == "" {
		sn.id = id
	}
	var named []string
	for _, x := range s.e.Sim.Snapshots() {
		if x.Name == sn.name {
			named = append(named, x.UUID)
		}
	}
	if len(named) != 1 || named[0] != id {
		s.st.violation(&s.st.duplicates, "after snapshot %s answered %s, the cloud holds snapshots %v by that name", sn.name, id, named)
	}
	return true
}

// deleteSnapshot deletes a snapshot, or again one deleted before.
func (s *soak) deleteSnapshot(r *rand.Rand) bool {
	sn := s.m.anySnapshot(r)
	sn.lock.Lock()
	defer sn.lock.Unlock()
	s.m.mu.Lock()
	id, unknown := sn.id, sn.unknown
	s.m.mu.Unlock()
	if unknown {
		return false
	}
	if id == "" {
		if id = s.m.graveSnapshot(r); id == "" {
			return false
		}
	}
	err, ok := s.converge("deletesnapshot", func(ctx context.Context) error {
		_, err := s.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id})
		return err
	})
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !ok || !s.expect("deletesnapshot", err, fmt.Sprintf("delete snapshot %s (%s)", sn.name, id), codes.OK) {
		sn.unknown = true
		return true
	}
	if sn.id == id {
		sn.id, sn.source = "", ""
		s.m.graveSnap = append(s.m.graveSnap, id)
	}
	for _, x := range s.e.Sim.Snapshots() {
		if x.UUID == id {
			s.st.violation(&s.st.mismatches, "DeleteSnapshot %s answered OK, the snapshot is still there", id)
		}
	}
	return true
}
