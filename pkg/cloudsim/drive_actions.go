package cloudsim

import (
	"maps"
	"net/http"
	"os"
	"strings"
)

// startResize grows a drive: its backing file at once, its status resizing
// for the resize delay, then the guest device's capacity. Shrinking is a
// validation error. Caller holds s.mu.
func (s *Sim) startResize(d *drive, size int64) *apiError {
	size = roundSize(size)
	if size < d.size {
		return errValidation("size", "Drive size cannot be decreased from %d to %d", d.size, size)
	}
	if e := s.caps.checkSize(d.storageType, size); e != nil {
		return e
	}
	if err := growBacking(s.drivePath(d.uuid), size); err != nil {
		return newErr(http.StatusInternalServerError, "backend", "", "resizing drive storage: %v", err)
	}
	d.size, d.op = size, stResizing
	id := d.uuid
	s.after(s.cfg.Delays.Resize, s.settle(id, stResizing, func(*drive) func() {
		if s.guest == nil {
			return nil
		}
		return func() { s.guest.refresh(id) }
	}))
	return nil
}

// resizeDrive is the "update or fail" action (manual 7.7): a full drive
// definition, refused with 403 when the drive is on a running guest.
func (s *Sim) resizeDrive(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	sp, e := parseDrive(m)
	if e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.drives[id]
	if d == nil {
		return errNotExist("Drive %s does not exist", id)
	}
	if e := d.busy(); e != nil {
		return e
	}
	if s.mountedOnRunning(d) {
		return errPermission("Cannot resize drive mounted on a running guest")
	}
	if e := s.checkTags(sp.tags); e != nil {
		return e
	}
	if e := s.startResize(d, sp.size); e != nil {
		return e
	}
	d.name, d.media, d.meta, d.tags = sp.name, sp.media, sp.meta, sp.tags
	d.affinities, d.allowMultimount = sp.affinities, sp.allowMultimount
	writeObjects(w, http.StatusAccepted, []map[string]any{s.renderDrive(d)})
	return nil
}

// cloneSpec is the optional body of a clone action (drive or snapshot).
type cloneSpec struct {
	name, media, storageType string
	stGiven                  bool
	affinities               []any
}

func parseClone(r *http.Request, m map[string]any) (cloneSpec, *apiError) {
	var cs cloneSpec
	var e *apiError
	if cs.name, _, e = getString(m, "name"); e != nil {
		return cs, e
	}
	if cs.media, _, e = getString(m, "media"); e != nil {
		return cs, e
	}
	if cs.media != "" && cs.media != "disk" && cs.media != "cdrom" {
		return cs, errValidation("media", "Select a valid choice. %q is not one of the available choices (cdrom, disk).", cs.media)
	}
	if cs.storageType, cs.stGiven, e = getString(m, "storage_type"); e != nil {
		return cs, e
	}
	if _, ok := m["affinities"]; ok {
		if cs.affinities, e = getList(m, "affinities"); e != nil {
			return cs, e
		}
	}
	// avoid (query or body) only hints placement; its form is checked.
	switch v := m["avoid"].(type) {
	case nil, string:
	case []any:
		for _, x := range v {
			if _, ok := x.(string); !ok {
				return cs, errValidation("avoid", "avoid must list drive UUIDs")
			}
		}
	default:
		return cs, errValidation("avoid", "avoid must list drive UUIDs")
	}
	for _, a := range r.URL.Query()["avoid"] {
		if strings.TrimSpace(a) == "" {
			return cs, errValidation("avoid", "empty avoid")
		}
	}
	return cs, nil
}

// checkCloneTarget validates the storage type and size of a new copy.
func (s *Sim) checkCloneTarget(st string, size int64) *apiError {
	if _, ok := s.caps.Drives[st]; !ok {
		return errValidation("storage_type", "Unknown storage type %q", st)
	}
	if st == LocalNVMe {
		return errPermission("Drives of storage type %s cannot be created by cloning", LocalNVMe)
	}
	return s.caps.checkSize(st, size)
}

// cloneDrive copies a drive (manual 7.10): 202 with the new drive in
// cloning_dst, the source in cloning_src until the clone delay has passed,
// and a drive_clone job on both.
func (s *Sim) cloneDrive(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	cs, e := parseClone(r, m)
	if e != nil {
		return e
	}
	s.mu.Lock()
	src := s.drives[id]
	if src == nil {
		s.mu.Unlock()
		return errNotExist("Drive %s does not exist", id)
	}
	// A drive being cloned can be cloned again: the copies only read it
	// (the manual's clone naming example clones one drive repeatedly).
	if src.deleting || src.op != stCloningSrc {
		if e := src.busy(); e != nil {
			s.mu.Unlock()
			return e
		}
	}
	if src.storageType == LocalNVMe {
		s.mu.Unlock()
		return errPermission("Drives of storage type %s cannot be cloned", LocalNVMe)
	}
	sp := driveSpec{
		name: pick(cs.name, src.name), media: pick(cs.media, src.media), size: src.size,
		storageType: src.storageType, storageTypeGiven: cs.stGiven,
		meta: maps.Clone(src.meta), affinities: cs.affinities,
	}
	if cs.stGiven {
		sp.storageType = cs.storageType
	}
	if sp.affinities == nil {
		sp.affinities, _ = deepCopy(src.affinities).([]any)
	}
	if e := s.checkCloneTarget(sp.storageType, sp.size); e != nil {
		s.mu.Unlock()
		return e
	}
	in, err := os.Open(s.drivePath(src.uuid))
	if err != nil {
		s.mu.Unlock()
		return newErr(http.StatusInternalServerError, "backend", "", "reading source drive: %v", err)
	}
	defer in.Close()
	dst, e := s.newDrive(sp, stCloningDst)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	dst.licenses, _ = deepCopy(src.licenses).([]any)
	j := s.newJob("drive_clone", []string{uri("drives", src.uuid), uri("drives", dst.uuid)}, s.cfg.Delays.Clone)
	src.jobs = append(src.jobs, j.uuid)
	dst.jobs = append(dst.jobs, j.uuid)
	src.op = stCloningSrc
	src.clones++
	s.mu.Unlock()

	// The copy runs outside the lock: the states above keep both drives
	// from being changed meanwhile.
	err = copySparseTo(in, s.drivePath(dst.uuid), dst.size)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.cloneDone(src.uuid)
		if post := s.vanishDrive(dst.uuid); post != nil {
			go post()
		}
		j.finish("failed")
		return newErr(http.StatusInternalServerError, "backend", "", "copying drive: %v", err)
	}
	srcID, dstID := src.uuid, dst.uuid
	s.after(s.cfg.Delays.Clone, func() func() {
		s.cloneDone(srcID)
		s.settle(dstID, stCloningDst, nil)()
		j.finish("success")
		return nil
	})
	writeObjects(w, http.StatusAccepted, []map[string]any{s.renderDrive(dst)})
	return nil
}

// cloneDone ends one clone of a source drive; the last one to finish
// clears cloning_src. Caller holds s.mu.
func (s *Sim) cloneDone(id string) {
	d := s.drives[id]
	if d == nil {
		return
	}
	if d.clones > 0 {
		d.clones--
	}
	if d.clones == 0 && d.op == stCloningSrc {
		d.op = ""
	}
}

func pick(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
