package cloudsim

import (
	"net/http"
	"os"
	"slices"
)

// canDeleteDrive: a drive in a transitional state cannot be deleted yet
// (503 concurrency); an unavailable one can. Caller holds s.mu.
func (s *Sim) canDeleteDrive(id string) *apiError {
	d := s.drives[id]
	if d == nil {
		return errNotExist("Drive %s does not exist", id)
	}
	if !d.deleting && d.op != "" && d.op != stUnavailable {
		return d.busy()
	}
	return nil
}

// deleteDrive starts an asynchronous deletion. The API allows deleting a
// mounted drive (manual 7.9); it leaves its servers when it vanishes.
// Caller holds s.mu.
func (s *Sim) deleteDrive(id string) *apiError {
	if e := s.canDeleteDrive(id); e != nil {
		return e
	}
	d := s.drives[id]
	if d.deleting {
		return nil
	}
	d.deleting = true
	s.after(s.cfg.Delays.Delete, func() func() { return s.vanishDrive(id) })
	return nil
}

// vanishDrive removes a drive for good: from every server, with its
// snapshots (a snapshot is a diff against its drive and cannot outlive it),
// its backing file and its guest device. Caller holds s.mu.
func (s *Sim) vanishDrive(id string) func() {
	if s.drives[id] == nil {
		return nil
	}
	delete(s.drives, id)
	for _, v := range s.servers {
		v.drives = slices.DeleteFunc(v.drives, func(e srvDrive) bool { return e.drive == id })
		delete(v.detaching, id)
	}
	files := []string{s.drivePath(id)}
	for sid, sn := range s.snapshots {
		if sn.drive == id {
			delete(s.snapshots, sid)
			files = append(files, s.snapPath(sid))
		}
	}
	return func() {
		if s.guest != nil {
			s.reconcileGuest(id)
		}
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
}

// bulkDelete handles DELETE on a list URL with {"objects": [{"uuid": ...}]}:
// every object is checked before any deletion starts.
func (s *Sim) bulkDelete(w http.ResponseWriter, r *http.Request, check, del func(id string) *apiError) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	ids := make([]string, 0, len(objs))
	for _, m := range objs {
		id, ok := refUUID(m)
		if !ok {
			return errValidation("uuid", "This field is required.")
		}
		ids = append(ids, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if e := check(id); e != nil {
			return e
		}
	}
	for _, id := range ids {
		if e := del(id); e != nil {
			return e
		}
	}
	writeNoContent(w)
	return nil
}
