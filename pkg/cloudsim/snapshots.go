package cloudsim

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/uuid"
)

// snapshotTime is the snapshot timestamp format of the manual's examples
// (a space, not "T").
const snapshotTime = "2006-01-02 15:04:05.000000-07:00"

type snapshot struct {
	seq         int64
	uuid, name  string
	drive       string // drive UUID
	size        int64  // drive size when taken
	media       string // drive media when taken: a clone's default
	storageType string
	driveMeta   map[string]string // drive meta when taken
	status      string            // creating, available
	deleting    bool
	allocated   int64
	meta        map[string]string
	tags        []string
	created     time.Time
}

func (s *Sim) snapPath(id string) string { return filepath.Join(s.dataDir, id+".snap") }

func (s *Sim) sortedSnapshots() []*snapshot {
	out := make([]*snapshot, 0, len(s.snapshots))
	for _, sn := range s.snapshots {
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (s *Sim) renderSnapshot(sn *snapshot) map[string]any {
	var allocated any = sn.allocated
	if sn.status == "creating" {
		allocated = nil
	}
	return map[string]any{
		"allocated_size": allocated,
		"drive":          ref("drives", sn.drive),
		"grantees":       []any{},
		"meta":           maps.Clone(sn.meta),
		"name":           sn.name,
		"owner":          s.userRef(),
		"permissions":    []any{},
		"resource_uri":   uri("snapshots", sn.uuid),
		"status":         sn.status,
		"tags":           tagRefs(sn.tags),
		"timestamp":      sn.created.Format(snapshotTime),
		"uuid":           sn.uuid,
	}
}

var snapshotFields = []string{"allocated_size", "drive", "grantees", "meta", "name", "owner",
	"permissions", "resource_uri", "status", "tags", "timestamp", "uuid"}

func (s *Sim) routeSnapshots(w http.ResponseWriter, r *http.Request, p []string) *apiError {
	switch {
	case len(p) == 0:
		switch r.Method {
		case http.MethodGet:
			return s.listSnapshots(w, r)
		case http.MethodPost:
			return s.createSnapshots(w, r)
		case http.MethodDelete:
			return s.bulkDelete(w, r, s.canDeleteSnapshot, s.deleteSnapshot)
		}
		return errMethod(r.Method, "GET", "POST", "DELETE")
	case len(p) == 1 && p[0] == "detail":
		if r.Method != http.MethodGet {
			return errMethod(r.Method, "GET")
		}
		return s.listSnapshots(w, r)
	case len(p) == 1:
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			sn := s.snapshots[p[0]]
			var obj map[string]any
			if sn != nil {
				obj = s.renderSnapshot(sn)
			}
			s.mu.Unlock()
			if sn == nil {
				return errNotExist("Snapshot %s does not exist", p[0])
			}
			writeObject(w, r, http.StatusOK, obj)
			return nil
		case http.MethodPut:
			return s.putSnapshot(w, r, p[0])
		case http.MethodDelete:
			s.mu.Lock()
			e := s.deleteSnapshot(p[0])
			s.mu.Unlock()
			if e != nil {
				return e
			}
			writeNoContent(w)
			return nil
		}
		return errMethod(r.Method, "GET", "PUT", "DELETE")
	case len(p) == 2 && p[1] == "action":
		do, e := action(r)
		if e != nil {
			return e
		}
		if do != "clone" {
			return errValidation("do", "Unknown action %q", do)
		}
		return s.cloneSnapshot(w, r, p[0])
	}
	return errNotExist("No resource at %s", r.URL.Path)
}

// listSnapshots: the plain list already carries full objects (manual 8.2).
func (s *Sim) listSnapshots(w http.ResponseWriter, r *http.Request) *apiError {
	s.mu.Lock()
	items := make([]listItem, 0, len(s.snapshots))
	for _, sn := range s.snapshots {
		items = append(items, listItem{
			seq: sn.seq, uuid: sn.uuid, name: sn.name, tags: sn.tags, tagNames: s.tagNames(sn.tags),
			drive: sn.drive, detail: s.renderSnapshot(sn),
		})
	}
	s.mu.Unlock()
	return writeList(w, r, items, true, listKind{fields: snapshotFields, driveFilter: true})
}

// createSnapshots takes {drive, name, meta} objects. The drive's bytes are
// copied at once, so the snapshot holds the drive as it was at this call.
func (s *Sim) createSnapshots(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	type req struct {
		drive, name string
		meta        map[string]string
		tags        []string
	}
	reqs := make([]req, 0, len(objs))
	for _, m := range objs {
		var q req
		id, ok := refUUID(m["drive"])
		if !ok {
			return errValidation("drive", "This field is required.")
		}
		q.drive = id
		if q.name, _, e = getString(m, "name"); e != nil {
			return e
		}
		if q.meta, e = getMeta(m); e != nil {
			return e
		}
		if q.tags, e = getRefs(m, "tags"); e != nil {
			return e
		}
		reqs = append(reqs, q)
	}
	s.mu.Lock()
	perDrive := map[string]int{}
	for _, sn := range s.snapshots {
		perDrive[sn.drive]++
	}
	total := len(s.snapshots)
	for _, q := range reqs {
		d := s.drives[q.drive]
		if d == nil || d.deleting {
			s.mu.Unlock()
			return errValidation("drive", "Drive %s does not exist", q.drive)
		}
		if e := d.busy(); e != nil {
			s.mu.Unlock()
			return e
		}
		if d.storageType == LocalNVMe {
			s.mu.Unlock()
			return errPermission("Drives of storage type %s cannot be snapshotted", LocalNVMe)
		}
		if e := s.checkTags(q.tags); e != nil {
			s.mu.Unlock()
			return e
		}
		// Limits are "operation not allowed": 403 permission (manual 2.12).
		total++
		perDrive[q.drive]++
		if total > s.caps.SnapshotsMax {
			s.mu.Unlock()
			return errPermission("Snapshot limit reached: at most %d snapshots per account", s.caps.SnapshotsMax)
		}
		if perDrive[q.drive] > s.caps.SnapshotsMaxPerDrive {
			s.mu.Unlock()
			return errPermission("Snapshot limit reached: at most %d snapshots per drive", s.caps.SnapshotsMaxPerDrive)
		}
	}
	type copyJob struct {
		in  *os.File
		sn  *snapshot
		out string
	}
	var copies []copyJob
	now := time.Now().UTC()
	for _, q := range reqs {
		d := s.drives[q.drive]
		in, err := os.Open(s.drivePath(d.uuid))
		if err != nil {
			s.mu.Unlock()
			closeAll(copies, func(j copyJob) *os.File { return j.in })
			return newErr(http.StatusInternalServerError, "backend", "", "reading drive: %v", err)
		}
		sn := &snapshot{
			seq: s.nextSeq(), uuid: uuid.NewString(), drive: d.uuid, size: d.size, media: d.media,
			storageType: d.storageType, driveMeta: maps.Clone(d.meta), status: "creating",
			meta: q.meta, tags: q.tags, created: now,
			name: pick(q.name, d.uuid+"__"+now.Format("2006-01-02__15_04_05")),
		}
		s.snapshots[sn.uuid] = sn
		copies = append(copies, copyJob{in: in, sn: sn, out: s.snapPath(sn.uuid)})
	}
	s.mu.Unlock()

	for _, c := range copies {
		err := copySparseTo(c.in, c.out, c.sn.size)
		c.in.Close()
		if err != nil {
			logf("snapshot %s: copying drive data: %v", c.sn.uuid, err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(copies))
	for _, c := range copies {
		id := c.sn.uuid
		s.after(s.cfg.Delays.Snapshot, func() func() {
			if sn := s.snapshots[id]; sn != nil && sn.status == "creating" {
				sn.status = "available"
			}
			return nil
		})
		out = append(out, s.renderSnapshot(c.sn))
	}
	setLocation(w, "snapshots", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

func closeAll[T any](items []T, f func(T) *os.File) {
	for _, it := range items {
		f(it).Close()
	}
}

// putSnapshot edits name, meta and tags; an absent meta or tags list is
// reset to empty (full-definition PUT), an absent name is kept.
func (s *Sim) putSnapshot(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	name, hasName, e := getString(m, "name")
	if e != nil {
		return e
	}
	meta, e := getMeta(m)
	if e != nil {
		return e
	}
	tags, e := getRefs(m, "tags")
	if e != nil {
		return e
	}
	s.mu.Lock()
	sn := s.snapshots[id]
	if sn == nil {
		s.mu.Unlock()
		return errNotExist("Snapshot %s does not exist", id)
	}
	if e := s.checkTags(tags); e != nil {
		s.mu.Unlock()
		return e
	}
	if hasName {
		sn.name = name
	}
	sn.meta, sn.tags = meta, tags
	obj := s.renderSnapshot(sn)
	s.mu.Unlock()
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

// canDeleteSnapshot: a snapshot still being created cannot be deleted yet.
func (s *Sim) canDeleteSnapshot(id string) *apiError {
	sn := s.snapshots[id]
	if sn == nil {
		return errNotExist("Snapshot %s does not exist", id)
	}
	if sn.status == "creating" {
		return errConcurrency("Snapshot %s is being created, try again later", id)
	}
	return nil
}

// deleteSnapshot starts an asynchronous deletion. Caller holds s.mu.
func (s *Sim) deleteSnapshot(id string) *apiError {
	if e := s.canDeleteSnapshot(id); e != nil {
		return e
	}
	sn := s.snapshots[id]
	if sn.deleting {
		return nil
	}
	sn.deleting = true
	s.after(s.cfg.Delays.Delete, func() func() {
		if s.snapshots[id] == nil {
			return nil
		}
		delete(s.snapshots, id)
		path := s.snapPath(id)
		return func() { _ = os.Remove(path) }
	})
	return nil
}

// cloneSnapshot restores a snapshot to a new drive (manual 8.9). The answer
// is the bare drive definition, and its resource_uri is an object, exactly
// as the manual's example and CloudSigma's recorded responses show.
func (s *Sim) cloneSnapshot(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	cs, e := parseClone(r, m)
	if e != nil {
		return e
	}
	s.mu.Lock()
	sn := s.snapshots[id]
	if sn == nil {
		s.mu.Unlock()
		return errNotExist("Snapshot %s does not exist", id)
	}
	if sn.status != "available" || sn.deleting {
		s.mu.Unlock()
		return errConcurrency("Snapshot %s is %s, try again later", id, sn.status)
	}
	sp := driveSpec{
		name: pick(cs.name, sn.name), media: pick(cs.media, pick(sn.media, "disk")), size: sn.size,
		storageType: sn.storageType, storageTypeGiven: cs.stGiven,
		meta: maps.Clone(sn.driveMeta), affinities: cs.affinities,
	}
	if cs.stGiven {
		sp.storageType = cs.storageType
	}
	if e := s.checkCloneTarget(sp.storageType, sp.size); e != nil {
		s.mu.Unlock()
		return e
	}
	in, err := os.Open(s.snapPath(sn.uuid))
	if err != nil {
		s.mu.Unlock()
		return newErr(http.StatusInternalServerError, "backend", "", "reading snapshot: %v", err)
	}
	defer in.Close()
	dst, e := s.newDrive(sp, stCloningDst)
	if e != nil {
		s.mu.Unlock()
		return e
	}
	s.mu.Unlock()

	err = copySparseTo(in, s.drivePath(dst.uuid), dst.size)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if post := s.vanishDrive(dst.uuid); post != nil {
			go post()
		}
		return newErr(http.StatusInternalServerError, "backend", "", "copying snapshot: %v", err)
	}
	s.after(s.cfg.Delays.Clone, s.settle(dst.uuid, stCloningDst, nil))
	obj := s.renderDrive(dst)
	obj["resource_uri"] = ref("drives", dst.uuid)
	writeJSON(w, http.StatusAccepted, obj)
	return nil
}
