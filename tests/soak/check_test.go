package soak_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

// observer sits in front of the simulator and sees every API call before
// the simulator (and its faults) does. The API deletes a mounted drive, and
// a drive's snapshots with it, without a word; the observer notes every
// DELETE of a drive that is mounted or has snapshots at that moment.
type observer struct {
	calls atomic.Int64

	mu                   sync.Mutex
	deletesAttached      []string
	deletesWithSnapshots []string
}

func (o *observer) wrap(sim *cloudsim.Sim, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.calls.Add(1)
		if r.Method == http.MethodDelete {
			o.checkDelete(sim, r.URL.Path)
		}
		next.ServeHTTP(w, r)
	})
}

func (o *observer) checkDelete(sim *cloudsim.Sim, path string) {
	rest, ok := strings.CutPrefix(path, "/api/2.0/drives/")
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	id := strings.TrimSuffix(rest, "/")
	if id == "" { // the bulk delete: the driver does not use it
		o.deletesAttached = append(o.deletesAttached, "a bulk DELETE /drives/, which this observer cannot check")
		return
	}
	d, exists := sim.Drive(id)
	if !exists || d.Deleting {
		return
	}
	if len(d.MountedOn) > 0 {
		o.deletesAttached = append(o.deletesAttached, fmt.Sprintf("DELETE drive %s (%s, %s) while mounted on %v", id, d.Name, d.Status, d.MountedOn))
	}
	if len(d.Snapshots) > 0 {
		o.deletesWithSnapshots = append(o.deletesWithSnapshots, fmt.Sprintf("DELETE drive %s (%s) with snapshots %v", id, d.Name, d.Snapshots))
	}
}

func (o *observer) violations() (attached, withSnapshots []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.deletesAttached), slices.Clone(o.deletesWithSnapshots)
}

// checkState compares the cloud with the model once every worker is done:
// each volume the driver answered with exists under its name, unretired,
// attached exactly where the answers said; each snapshot exists for its
// volume; no name holds two drives or two snapshots.
func (s *soak) checkState() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	drives := map[string]cloudsim.Drive{}
	byName := map[string][]string{}
	for _, d := range s.e.Sim.Drives() {
		drives[d.UUID] = d
		byName[d.Name] = append(byName[d.Name], d.UUID)
	}
	for _, v := range s.m.vols {
		if ids := byName[v.name]; len(ids) > 1 {
			s.st.violation(&s.st.duplicates, "volume name %s: drives %v", v.name, ids)
		}
		if v.unknown || v.id == "" {
			continue
		}
		d, ok := drives[v.id]
		switch {
		case !ok:
			s.st.violation(&s.st.mismatches, "volume %s (%s) is gone", v.name, v.id)
		case isRetired(d.Meta) || d.Name != v.name:
			s.st.violation(&s.st.mismatches, "volume %s (%s) is named %s, meta %v", v.name, v.id, d.Name, d.Meta)
		default:
			got := slices.Sorted(slices.Values(d.MountedOn))
			if want := v.attachedNodes(); !slices.Equal(got, want) {
				s.st.violation(&s.st.mismatches, "volume %s (%s) is mounted on %v, published at %v", v.name, v.id, got, want)
			}
		}
	}
	snapsByName := map[string][]string{}
	snaps := map[string]cloudsim.Snapshot{}
	for _, x := range s.e.Sim.Snapshots() {
		snaps[x.UUID] = x
		snapsByName[x.Name] = append(snapsByName[x.Name], x.UUID)
	}
	for _, sn := range s.m.snaps {
		if ids := snapsByName[sn.name]; len(ids) > 1 {
			s.st.violation(&s.st.duplicates, "snapshot name %s: snapshots %v", sn.name, ids)
		}
		if sn.unknown || sn.id == "" {
			continue
		}
		if x, ok := snaps[sn.id]; !ok || x.Drive != sn.source {
			s.st.violation(&s.st.mismatches, "snapshot %s (%s) of %s: in the cloud %+v (exists %t)", sn.name, sn.id, sn.source, x, ok)
		}
	}
}

// cleanup unpublishes and deletes every volume and deletes every snapshot
// the workers know of, as a CO would when everything is deleted. A volume
// or snapshot whose create did not converge is asked for again first, as
// the CO would keep asking. Faults and restarts have stopped.
func (s *soak) cleanup() {
	var wg sync.WaitGroup
	for _, v := range s.m.vols {
		wg.Go(func() { s.cleanVolume(v) })
	}
	wg.Wait()
	for _, sn := range s.m.snaps {
		wg.Go(func() { s.cleanSnapshot(sn) })
	}
	wg.Wait()
}

func (s *soak) cleanVolume(v *volume) {
	s.m.mu.Lock()
	id, src, unknown := v.id, v.source, v.unknown
	s.m.mu.Unlock()
	if unknown && id == "" && (!v.restore || src != "") {
		vol, err, ok := s.createVolume("cleanup-create", v.name, src)
		if ok && err == nil {
			id = vol.GetVolumeId()
		}
	}
	if id == "" {
		return
	}
	for _, n := range s.m.nodeIDs {
		err, ok := s.converge("cleanup-unpublish", func(ctx context.Context) error {
			_, err := s.c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: n})
			return err
		})
		if ok {
			s.expect("cleanup-unpublish", err, fmt.Sprintf("unpublish %s (%s) from %s", v.name, id, n), codes.OK)
		}
	}
	err, ok := s.converge("cleanup-delete", func(ctx context.Context) error {
		_, err := s.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		return err
	})
	if ok {
		s.expect("cleanup-delete", err, fmt.Sprintf("delete %s (%s)", v.name, id), codes.OK)
	}
}

func (s *soak) cleanSnapshot(sn *snapshot) {
	s.m.mu.Lock()
	id, src, unknown := sn.id, sn.source, sn.unknown
	s.m.mu.Unlock()
	if unknown && id == "" && src != "" {
		var snap *csi.Snapshot
		err, ok := s.converge("cleanup-snapshot", func(ctx context.Context) error {
			resp, err := s.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: sn.name, SourceVolumeId: src})
			snap = resp.GetSnapshot()
			return err
		})
		if ok && err == nil {
			id = snap.GetSnapshotId()
		}
	}
	if id == "" {
		return
	}
	err, ok := s.converge("cleanup-deletesnap", func(ctx context.Context) error {
		_, err := s.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id})
		return err
	})
	if ok {
		s.expect("cleanup-deletesnap", err, fmt.Sprintf("delete snapshot %s (%s)", sn.name, id), codes.OK)
	}
}

// waitEmpty waits for the last deletions and the sweep of retired drives,
// then counts what is left: every drive and snapshot in this account was
// the test's.
func (s *soak) waitEmpty(within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		drives, snaps := s.e.Sim.Drives(), s.e.Sim.Snapshots()
		if len(drives)+len(snaps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range drives {
				s.st.violation(&s.st.leaks, "drive %s %q (%s) mounted on %v, snapshots %v, meta %v", d.UUID, d.Name, d.Status, d.MountedOn, d.Snapshots, d.Meta)
			}
			for _, x := range snaps {
				s.st.violation(&s.st.leaks, "snapshot %s %q of drive %s (%s)", x.UUID, x.Name, x.Drive, x.Status)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
