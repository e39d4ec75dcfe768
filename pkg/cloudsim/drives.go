package cloudsim

import (
	"maps"
	"net/http"
	"path/filepath"

	"github.com/google/uuid"
)

// Drive statuses (the documented set). mounted/unmounted are derived from
// mounted_on; the others are held in drive.op while they last.
const (
	stCreating    = "creating"
	stUnmounted   = "unmounted"
	stMounted     = "mounted"
	stCloningSrc  = "cloning_src"
	stCloningDst  = "cloning_dst"
	stResizing    = "resizing"
	stCopying     = "copying"
	stUnavailable = "unavailable"
)

// sizeGranule: CloudSigma rounds drive sizes (by up to 64 KiB); we round
// up, which also keeps loop devices sector aligned.
const sizeGranule = 64 << 10

func roundSize(n int64) int64 { return (n + sizeGranule - 1) / sizeGranule * sizeGranule }

type drive struct {
	seq               int64
	uuid, name, media string
	storageType       string
	storageTypeHidden bool // storage_type reads null while pending (002 examples)
	size              int64
	op                string // transitional status, "" = mounted/unmounted
	clones            int    // clones reading this drive (op cloning_src while > 0)
	deleting          bool
	meta              map[string]string
	tags              []string
	affinities        []any
	allowMultimount   bool
	licenses          []any
	jobs              []string
	mountedOn         []string // server UUIDs
}

func (d *drive) status() string {
	switch {
	case d.op != "":
		return d.op
	case len(d.mountedOn) > 0:
		return stMounted
	default:
		return stUnmounted
	}
}

func (d *drive) pending() bool { return d.op == stCreating || d.op == stCloningDst }

// busy refuses changes to a drive in a transitional state. The manual names
// no error for this; we answer 503 concurrency, the documented "conflicting
// simultaneous operation, retry" class, because the state passes by itself.
// unavailable does not pass by itself: 403 permission.
func (d *drive) busy() *apiError {
	if d.deleting {
		return errConcurrency("Drive %s is being deleted", d.uuid)
	}
	switch d.op {
	case "":
		return nil
	case stUnavailable:
		return errPermission("Drive %s is unavailable", d.uuid)
	default:
		return errConcurrency("Drive %s is busy (%s), try again later", d.uuid, d.op)
	}
}

func (s *Sim) drivePath(id string) string { return filepath.Join(s.dataDir, id+".img") }

// mountedOnRunning: the drive is attached to a server with a live guest.
func (s *Sim) mountedOnRunning(d *drive) bool {
	for _, id := range d.mountedOn {
		if v := s.servers[id]; v != nil && v.guestLive() {
			return true
		}
	}
	return false
}

// renderDrive is the detail definition, with the fields of the manual's
// drive examples (7.3-7.10: grantees and permissions included; the 002
// dump's examples omit those two).
func (s *Sim) renderDrive(d *drive) map[string]any {
	var st any = d.storageType
	if d.pending() && d.storageTypeHidden {
		st = nil
	}
	var snapshotable any = d.storageType != LocalNVMe
	if d.pending() {
		snapshotable = nil
	}
	snaps, allocated := []any{}, int64(0)
	for _, sn := range s.sortedSnapshots() {
		if sn.drive == d.uuid {
			snaps = append(snaps, ref("snapshots", sn.uuid))
			allocated += sn.allocated
		}
	}
	mounted := []any{}
	for _, id := range d.mountedOn {
		mounted = append(mounted, ref("servers", id))
	}
	jobs := []any{}
	for _, id := range d.jobs {
		jobs = append(jobs, ref("jobs", id))
	}
	return map[string]any{
		"affinities":       deepCopy(d.affinities),
		"allow_multimount": d.allowMultimount,
		"grantees":         []any{},
		"jobs":             jobs,
		"licenses":         deepCopy(d.licenses),
		"media":            d.media,
		"meta":             maps.Clone(d.meta),
		"mounted_on":       mounted,
		"name":             d.name,
		"owner":            s.userRef(),
		"permissions":      []any{},
		"resource_uri":     uri("drives", d.uuid),
		"runtime": map[string]any{
			"is_snapshotable":          snapshotable,
			"snapshots_allocated_size": allocated,
			"storage_type":             st,
		},
		"size":         d.size,
		"snapshots":    snaps,
		"status":       d.status(),
		"storage_type": st,
		"tags":         tagRefs(d.tags),
		"uuid":         d.uuid,
	}
}

// renderDriveShort is an entry of the plain GET /drives/ list.
func (s *Sim) renderDriveShort(d *drive) map[string]any {
	return map[string]any{
		"owner":        s.userRef(),
		"resource_uri": uri("drives", d.uuid),
		"status":       d.status(),
		"uuid":         d.uuid,
	}
}

var driveFields = []string{"affinities", "allow_multimount", "grantees", "jobs", "licenses", "media",
	"meta", "mounted_on", "name", "owner", "permissions", "resource_uri", "runtime", "size",
	"snapshots", "status", "storage_type", "tags", "uuid"}

func (s *Sim) routeDrives(w http.ResponseWriter, r *http.Request, p []string) *apiError {
	switch {
	case len(p) == 0:
		switch r.Method {
		case http.MethodGet:
			return s.listDrives(w, r, false)
		case http.MethodPost:
			return s.createDrives(w, r)
		case http.MethodDelete:
			return s.bulkDelete(w, r, s.canDeleteDrive, s.deleteDrive)
		}
		return errMethod(r.Method, "GET", "POST", "DELETE")
	case len(p) == 1 && p[0] == "detail":
		if r.Method != http.MethodGet {
			return errMethod(r.Method, "GET")
		}
		return s.listDrives(w, r, true)
	case len(p) == 1:
		switch r.Method {
		case http.MethodGet:
			return s.getDrive(w, r, p[0])
		case http.MethodPut:
			return s.putDrive(w, r, p[0])
		case http.MethodDelete:
			s.mu.Lock()
			e := s.deleteDrive(p[0])
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
		switch do {
		case "resize":
			return s.resizeDrive(w, r, p[0])
		case "clone":
			return s.cloneDrive(w, r, p[0])
		}
		return errValidation("do", "Unknown action %q", do)
	case len(p) == 2 && p[1] == "download":
		if r.Method != http.MethodGet {
			return errMethod(r.Method, "GET")
		}
		return s.redirectDownload(w, r, p[0])
	}
	return errNotExist("No resource at %s", r.URL.Path)
}

func (s *Sim) listDrives(w http.ResponseWriter, r *http.Request, detail bool) *apiError {
	s.mu.Lock()
	items := make([]listItem, 0, len(s.drives))
	for _, d := range s.drives {
		items = append(items, listItem{
			seq: d.seq, uuid: d.uuid, name: d.name, tags: d.tags, tagNames: s.tagNames(d.tags),
			detail: s.renderDrive(d), short: s.renderDriveShort(d),
		})
	}
	s.mu.Unlock()
	return writeList(w, r, items, detail, listKind{fields: driveFields})
}

func (s *Sim) getDrive(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.Lock()
	d := s.drives[id]
	if d == nil {
		s.mu.Unlock()
		return errNotExist("Drive %s does not exist", id)
	}
	obj := s.renderDrive(d)
	s.mu.Unlock()
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

// driveSpec is a parsed drive definition.
type driveSpec struct {
	name, media      string
	size             int64
	storageType      string
	storageTypeGiven bool
	meta             map[string]string
	tags             []string
	affinities       []any
	allowMultimount  bool
}

// parseDrive reads a full drive definition. name, media and size are
// required (the schema says so); meta, tags, affinities and
// allow_multimount take their defaults when absent: a full-definition PUT
// wipes what the client leaves out.
func parseDrive(m map[string]any) (driveSpec, *apiError) {
	var sp driveSpec
	var ok bool
	var e *apiError
	if sp.name, ok, e = getString(m, "name"); e != nil || !ok {
		return sp, orRequired(e, "name")
	}
	if sp.media, ok, e = getString(m, "media"); e != nil || !ok {
		return sp, orRequired(e, "media")
	}
	if sp.media != "disk" && sp.media != "cdrom" {
		return sp, errValidation("media", "Select a valid choice. %q is not one of the available choices (cdrom, disk).", sp.media)
	}
	if sp.size, ok, e = getInt64(m, "size"); e != nil || !ok {
		return sp, orRequired(e, "size")
	}
	if sp.storageType, sp.storageTypeGiven, e = getString(m, "storage_type"); e != nil {
		return sp, e
	}
	if sp.meta, e = getMeta(m); e != nil {
		return sp, e
	}
	if sp.tags, e = getRefs(m, "tags"); e != nil {
		return sp, e
	}
	if sp.affinities, e = getList(m, "affinities"); e != nil {
		return sp, e
	}
	if sp.allowMultimount, _, e = getBool(m, "allow_multimount"); e != nil {
		return sp, e
	}
	return sp, nil
}

func orRequired(e *apiError, field string) *apiError {
	if e != nil {
		return e
	}
	return errValidation(field, "This field is required.")
}

// newDrive registers a drive and its sparse backing file. Caller holds s.mu.
func (s *Sim) newDrive(sp driveSpec, op string) (*drive, *apiError) {
	d := &drive{
		seq: s.nextSeq(), uuid: uuid.NewString(), name: sp.name, media: sp.media,
		storageType: sp.storageType, storageTypeHidden: !sp.storageTypeGiven,
		size: roundSize(sp.size), op: op, meta: sp.meta, tags: sp.tags,
		affinities: sp.affinities, allowMultimount: sp.allowMultimount, licenses: []any{},
	}
	if d.meta == nil {
		d.meta = map[string]string{}
	}
	if d.tags == nil {
		d.tags = []string{}
	}
	if d.affinities == nil {
		d.affinities = []any{}
	}
	if err := createBacking(s.drivePath(d.uuid), d.size); err != nil {
		return nil, newErr(http.StatusInternalServerError, "backend", "", "creating drive storage: %v", err)
	}
	s.drives[d.uuid] = d
	return d, nil
}

// settle clears a transitional status after delay, if it is still the one
// set (a test may have made the drive unavailable meanwhile).
func (s *Sim) settle(id, op string, then func(d *drive) func()) func() func() {
	return func() func() {
		d := s.drives[id]
		if d == nil || d.op != op {
			return nil
		}
		d.op = ""
		if then != nil {
			return then(d)
		}
		return nil
	}
}

func (s *Sim) createDrives(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	specs := make([]driveSpec, 0, len(objs))
	for _, m := range objs {
		sp, e := parseDrive(m)
		if e != nil {
			return e
		}
		if !sp.storageTypeGiven {
			sp.storageType = s.caps.DefaultStorageType
		}
		if e := s.caps.checkSize(sp.storageType, sp.size); e != nil {
			return e
		}
		specs = append(specs, sp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if e := s.checkTags(sp.tags); e != nil {
			return e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	for _, sp := range specs {
		d, e := s.newDrive(sp, stCreating)
		if e != nil {
			return e
		}
		s.after(s.cfg.Delays.Create, s.settle(d.uuid, stCreating, nil))
		out = append(out, s.renderDrive(d))
	}
	setLocation(w, "drives", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

// putDrive edits a drive. On a drive mounted on a running server only name,
// meta, tags and allow_multimount apply and the rest is silently ignored
// (manual 7.6); otherwise a bigger size starts a resize.
func (s *Sim) putDrive(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	sp, e := parseDrive(m)
	if e != nil {
		return e
	}
	s.mu.Lock()
	d := s.drives[id]
	if d == nil {
		s.mu.Unlock()
		return errNotExist("Drive %s does not exist", id)
	}
	if e := d.busy(); e != nil {
		s.mu.Unlock()
		return e
	}
	if e := s.checkTags(sp.tags); e != nil {
		s.mu.Unlock()
		return e
	}
	var posts []func()
	if !s.mountedOnRunning(d) {
		if roundSize(sp.size) != d.size {
			if e := s.startResize(d, sp.size); e != nil {
				s.mu.Unlock()
				return e
			}
		}
		d.media, d.affinities = sp.media, sp.affinities
	}
	d.name, d.meta, d.tags, d.allowMultimount = sp.name, sp.meta, sp.tags, sp.allowMultimount
	obj := s.renderDrive(d)
	s.mu.Unlock()
	runAll(posts)
	writeObject(w, r, http.StatusOK, obj)
	return nil
}
