package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// The random operations. Each picks its objects, locks them, reads in the
// model what the answer must be, calls the driver like a sidecar (retrying
// until it converges) and records the outcome. Each returns false when it
// found nothing to do (skipped).

const (
	gib     = int64(1) << 30
	maxSize = 4 * gib // expansions stop here (then ask for the size it has)
)

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func createRequest(name, snapshot string) *csi.CreateVolumeRequest {
	req := &csi.CreateVolumeRequest{Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: gib},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}}
	if snapshot != "" {
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snapshot}}}
	}
	return req
}

// create asks for a plain volume by a name other workers use too.
func (s *soak) create(r *rand.Rand) bool {
	v := s.m.plainVolume(r)
	v.lock.RLock()
	defer v.lock.RUnlock()
	s.m.mu.Lock()
	if v.unknown {
		s.m.mu.Unlock()
		return false
	}
	v.creating++
	s.m.mu.Unlock()
	vol, err, ok := s.createVolume("create", v.name, "")
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	v.creating--
	if !ok || !s.expect("create", err, "create "+v.name, codes.OK) {
		v.unknown = true
		return true
	}
	s.createdLocked("create", v, vol)
	return true
}

func (s *soak) createVolume(op, name, snapshot string) (*csi.Volume, error, bool) {
	var vol *csi.Volume
	err, ok := s.converge(op, func(ctx context.Context) error {
		resp, err := s.c.CreateVolume(ctx, createRequest(name, snapshot))
		vol = resp.GetVolume()
		return err
	})
	return vol, err, ok
}

// createdLocked checks a volume the driver answered with: one volume per
// name, the same one for every create by that name while it exists.
func (s *soak) createdLocked(op string, v *volume, vol *csi.Volume) {
	id := vol.GetVolumeId()
	if v.id != "" && v.id != id {
		s.st.outcome(op, codes.OK, false, fmt.Sprintf("create %s answered volume %s, an earlier create answered %s", v.name, id, v.id))
		v.unknown = true
		return
	}
	if v.id == "" {
		v.id, v.size = id, vol.GetCapacityBytes()
	}
	var named []string
	for _, d := range s.e.Sim.Drives() {
		if d.Name == v.name {
			named = append(named, d.UUID)
		}
	}
	if len(named) != 1 || named[0] != id {
		s.st.violation(&s.st.duplicates, "after create %s answered %s, the cloud holds drives %v by that name", v.name, id, named)
	}
}

// restore creates a volume from a snapshot; the name stays bound to that
// snapshot until the volume is deleted, so a repeated restore is the same
// request, even after the snapshot is gone.
func (s *soak) restore(r *rand.Rand) bool {
	v := s.m.restoreVolume(r)
	v.lock.RLock()
	defer v.lock.RUnlock()
	s.m.mu.Lock()
	if v.unknown {
		s.m.mu.Unlock()
		return false
	}
	if v.source == "" {
		var ready []*snapshot
		for _, sn := range s.m.snaps {
			if sn.id != "" && !sn.unknown {
				ready = append(ready, sn)
			}
		}
		if len(ready) == 0 {
			s.m.mu.Unlock()
			return false
		}
		v.source = ready[r.IntN(len(ready))].id
	}
	src, existed := v.source, v.id != ""
	sn := s.m.snapshotByIDLocked(src)
	v.creating++
	s.m.mu.Unlock()
	if sn != nil {
		sn.lock.RLock()
		defer sn.lock.RUnlock()
	}
	s.m.mu.Lock()
	present := sn != nil && sn.id == src && !sn.unknown
	s.m.mu.Unlock()

	vol, err, ok := s.createVolume("restore", v.name, src)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	v.creating--
	want := []codes.Code{codes.OK}
	if !existed && !present {
		// The snapshot went before this restore; another restore that
		// started earlier may have made the volume all the same.
		want = append(want, codes.NotFound)
	}
	if !ok || !s.expect("restore", err, fmt.Sprintf("restore %s from %s (snapshot present %t, volume existed %t)", v.name, src, present, existed), want...) {
		v.unknown = true
		return true
	}
	if err != nil {
		if v.id == "" && v.creating == 0 {
			v.source = ""
		}
		return true
	}
	if got := vol.GetContentSource().GetSnapshot().GetSnapshotId(); got != src {
		s.st.outcome("restore", codes.OK, false, fmt.Sprintf("restore %s from %s answered content source %q", v.name, src, got))
	}
	s.createdLocked("restore", v, vol)
	return true
}

// state reads a volume's model under the model lock.
func (s *soak) state(v *volume) (id string, size int64, attached []string, unknown bool) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return v.id, v.size, v.attachedNodes(), v.unknown
}

// deleteVolume deletes a volume: refused while it is attached, which the
// worker, like a CO, sometimes fixes first.
func (s *soak) deleteVolume(r *rand.Rand) bool {
	v := s.m.anyVolume(r)
	v.lock.Lock()
	defer v.lock.Unlock()
	id, _, attached, unknown := s.state(v)
	if unknown {
		return false
	}
	if id == "" {
		gone := s.graveVolume(r)
		if gone == "" {
			return false
		}
		err, ok := s.converge("delete", func(ctx context.Context) error {
			_, err := s.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: gone})
			return err
		})
		if ok {
			s.expect("delete", err, "delete of deleted volume "+gone, codes.OK)
		}
		return true
	}
	if len(attached) > 0 && r.IntN(2) == 0 {
		if !s.unpublishAll(v, id, attached) {
			return true
		}
		attached = nil
	}
	want := codes.OK
	if len(attached) > 0 {
		want = codes.FailedPrecondition
	}
	err, ok := s.converge("delete", func(ctx context.Context) error {
		_, err := s.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		return err
	})
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !ok || !s.expect("delete", err, fmt.Sprintf("delete %s (%s) attached at %v", v.name, id, attached), want) {
		v.unknown = true
		return true
	}
	if err == nil {
		v.id, v.size, v.source = "", 0, ""
		s.m.graveVols = append(s.m.graveVols, id)
		if d, still := s.e.Sim.Drive(id); still && !d.Deleting && !isRetired(d.Meta) {
			s.st.violation(&s.st.mismatches, "DeleteVolume %s (%s) answered OK, the drive is still there, not retired: %+v", v.name, id, d)
		}
	}
	return true
}

// unpublishAll detaches a volume from every node it is published at.
func (s *soak) unpublishAll(v *volume, id string, nodes []string) bool {
	for _, n := range nodes {
		if !s.unpublishFrom("unpublish", v, id, n) {
			return false
		}
	}
	return true
}

func (s *soak) unpublishFrom(op string, v *volume, id, node string) bool {
	err, ok := s.converge(op, func(ctx context.Context) error {
		_, err := s.c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: node})
		return err
	})
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !ok || !s.expect(op, err, fmt.Sprintf("unpublish %s (%s) from %s", v.name, id, node), codes.OK) {
		v.unknown = true
		return false
	}
	s.m.detachedLocked(v, node)
	if d, exists := s.e.Sim.Drive(id); exists && slices.Contains(d.MountedOn, node) {
		s.st.violation(&s.st.mismatches, "unpublish %s from %s answered OK, the drive is still mounted on %v", id, node, d.MountedOn)
	}
	return true
}

// publish attaches a volume to a random node: refused when it is attached
// to another (running) node, or when the node's attach slots are taken.
func (s *soak) publish(r *rand.Rand) bool {
	v := s.m.anyVolume(r)
	v.lock.Lock()
	defer v.lock.Unlock()
	id, _, attached, unknown := s.state(v)
	if unknown {
		return false
	}
	node := s.m.anyNode(r)
	call := func(id string) (*csi.ControllerPublishVolumeResponse, error, bool) {
		var resp *csi.ControllerPublishVolumeResponse
		err, ok := s.converge("publish", func(ctx context.Context) error {
			var err error
			resp, err = s.c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node, VolumeCapability: mountCap})
			return err
		})
		return resp, err, ok
	}
	if id == "" {
		gone := s.graveVolume(r)
		if gone == "" {
			return false
		}
		if _, err, ok := call(gone); ok {
			s.expect("publish", err, "publish of deleted volume "+gone, codes.NotFound)
		}
		return true
	}
	what := fmt.Sprintf("publish %s (%s) at %s, attached at %v", v.name, id, node, attached)
	if len(attached) > 0 {
		want := codes.FailedPrecondition
		if slices.Contains(attached, node) {
			want = codes.OK
		}
		_, err, ok := call(id)
		if !ok || !s.expect("publish", err, what, want) {
			s.m.mu.Lock()
			v.unknown = true
			s.m.mu.Unlock()
		}
		return true
	}
	w := s.m.startPublish(node)
	resp, err, ok := call(id)
	others := s.m.endPublish(node, w, ok && err != nil)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	switch {
	case !ok:
		v.unknown = true
	case err == nil:
		v.attached[node] = true
		s.expect("publish", err, what, codes.OK)
		if got := resp.GetPublishContext()[params.PublishDriveUUID]; got != id {
			s.st.outcome("publish", codes.OK, false, fmt.Sprintf("%s: publish context names drive %q", what, got))
		}
	default:
		// The limit refuses only a node whose slots were all taken (or
		// being taken) by others at some moment of this call.
		want := []codes.Code{}
		if others >= s.attachLimit {
			want = append(want, codes.ResourceExhausted)
		}
		if !s.expect("publish", err, fmt.Sprintf("%s, %d others on the node at most", what, others), want...) {
			v.unknown = true
		}
	}
	return true
}

// unpublish detaches a volume from a node, mostly one it is attached to.
func (s *soak) unpublish(r *rand.Rand) bool {
	v := s.m.anyVolume(r)
	v.lock.Lock()
	defer v.lock.Unlock()
	id, _, attached, unknown := s.state(v)
	if unknown {
		return false
	}
	node := s.m.anyNode(r)
	if len(attached) > 0 && r.IntN(5) > 0 {
		node = attached[r.IntN(len(attached))]
	}
	if id == "" {
		gone := s.graveVolume(r)
		if gone == "" {
			return false
		}
		err, ok := s.converge("unpublish", func(ctx context.Context) error {
			_, err := s.c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: gone, NodeId: node})
			return err
		})
		if ok {
			s.expect("unpublish", err, "unpublish of deleted volume "+gone, codes.OK, codes.NotFound)
		}
		return true
	}
	s.unpublishFrom("unpublish", v, id, node)
	return true
}

// expand grows a volume offline: refused while it is attached to a running
// server, which the worker sometimes fixes first.
func (s *soak) expand(r *rand.Rand) bool {
	v := s.m.anyVolume(r)
	v.lock.Lock()
	defer v.lock.Unlock()
	id, size, attached, unknown := s.state(v)
	if unknown {
		return false
	}
	call := func(id string, want int64) (int64, error, bool) {
		var got int64
		err, ok := s.converge("expand", func(ctx context.Context) error {
			resp, err := s.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: want}, VolumeCapability: mountCap})
			got = resp.GetCapacityBytes()
			return err
		})
		return got, err, ok
	}
	if id == "" {
		gone := s.graveVolume(r)
		if gone == "" {
			return false
		}
		if _, err, ok := call(gone, 2*gib); ok {
			s.expect("expand", err, "expand of deleted volume "+gone, codes.NotFound)
		}
		return true
	}
	want := size + gib
	if size >= maxSize {
		want = size
	}
	if len(attached) > 0 && want > size && r.IntN(2) == 0 {
		if !s.unpublishAll(v, id, attached) {
			return true
		}
		attached = nil
	}
	code := codes.OK
	if len(attached) > 0 && want > size {
		code = codes.FailedPrecondition
	}
	got, err, ok := call(id, want)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	what := fmt.Sprintf("expand %s (%s) from %d to %d bytes, attached at %v", v.name, id, size, want, attached)
	if !ok || !s.expect("expand", err, what, code) {
		v.unknown = true
		return true
	}
	if err == nil {
		if got < want {
			s.st.outcome("expand", codes.OK, false, fmt.Sprintf("%s: answered %d bytes", what, got))
		}
		v.size = got
	}
	return true
}

// conflict repeats a create by an existing volume's name with another
// content source: AlreadyExists, and nothing changes.
func (s *soak) conflict(r *rand.Rand) bool {
	v := s.m.anyVolume(r)
	v.lock.Lock()
	defer v.lock.Unlock()
	id, _, _, unknown := s.state(v)
	if unknown || id == "" {
		return false
	}
	src := ""
	if !v.restore {
		if src = s.m.graveSnapshot(r); src == "" {
			src = "2f1e8c1a-5b1d-4c59-9a8e-000000000000" // no such snapshot
		}
	}
	_, err, ok := s.createVolume("conflict", v.name, src)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !ok || !s.expect("conflict", err, fmt.Sprintf("create %s (exists as %s) with source %q", v.name, id, src), codes.AlreadyExists) {
		v.unknown = true
	}
	return true
}

// graveVolume is, a third of the time, the id of a deleted volume to try
// again; "" (skip) otherwise or when none was deleted yet.
func (s *soak) graveVolume(r *rand.Rand) string {
	if r.IntN(3) > 0 {
		return ""
	}
	return s.m.graveVolume(r)
}

func isRetired(meta map[string]string) bool { return meta["csi_retired"] != "" }

func short(err error) string {
	if err == nil {
		return "OK"
	}
	msg := err.Error()
	if i := strings.Index(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}
