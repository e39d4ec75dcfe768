package cloudsim

import (
	"maps"
	"net/http"
	"os"
	"slices"
	"time"

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

// mountedOnRunningLocked: the drive is attached to a server with a live guest.
func (st *store) mountedOnRunningLocked(d *drive) bool {
	for _, id := range d.mountedOn {
		if v := st.servers[id]; v != nil && v.guestLive() {
			return true
		}
	}
	return false
}

// renderDriveLocked is the detail definition, with the fields of the
// manual's drive examples (7.3-7.10: grantees and permissions included; the
// 002 dump's examples omit those two).
func (st *store) renderDriveLocked(d *drive) map[string]any {
	var stype any = d.storageType
	if d.pending() && d.storageTypeHidden {
		stype = nil
	}
	var snapshotable any = d.storageType != LocalNVMe
	if d.pending() {
		snapshotable = nil
	}
	snaps, allocated := []any{}, int64(0)
	for _, sn := range st.sortedSnapshotsLocked() {
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
		"owner":            st.userRef(),
		"permissions":      []any{},
		"resource_uri":     uri("drives", d.uuid),
		"runtime": map[string]any{
			"is_snapshotable":          snapshotable,
			"snapshots_allocated_size": allocated,
			"storage_type":             stype,
		},
		"size":         d.size,
		"snapshots":    snaps,
		"status":       d.status(),
		"storage_type": stype,
		"tags":         tagRefs(d.tags),
		"uuid":         d.uuid,
	}
}

// renderDriveShortLocked is an entry of the plain GET /drives/ list.
func (st *store) renderDriveShortLocked(d *drive) map[string]any {
	return map[string]any{
		"owner":        st.userRef(),
		"resource_uri": uri("drives", d.uuid),
		"status":       d.status(),
		"uuid":         d.uuid,
	}
}

// driveList renders every drive for the list endpoints.
func (st *store) driveList() []listItem {
	st.mu.Lock()
	defer st.mu.Unlock()
	items := make([]listItem, 0, len(st.drives))
	for _, d := range st.drives {
		items = append(items, listItem{
			seq: d.seq, uuid: d.uuid, name: d.name, tags: d.tags, tagNames: st.tagNamesLocked(d.tags),
			detail: st.renderDriveLocked(d), short: st.renderDriveShortLocked(d),
		})
	}
	return items
}

// driveLocked is the drive id, or the API's 404 for it.
func (st *store) driveLocked(id string) (*drive, *apiError) {
	d := st.drives[id]
	if d == nil {
		return nil, errNotExist("Drive %s does not exist", id)
	}
	return d, nil
}

// idleDriveLocked is a drive that no operation holds: the API's 404 when it
// is missing, its busy answer while it is being created, cloned or resized.
func (st *store) idleDriveLocked(id string) (*drive, *apiError) {
	d, e := st.driveLocked(id)
	if e != nil {
		return nil, e
	}
	if e := d.busy(); e != nil {
		return nil, e
	}
	return d, nil
}

// driveObject is one drive as the API renders it.
func (st *store) driveObject(id string) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d, e := st.driveLocked(id)
	if e != nil {
		return nil, e
	}
	return st.renderDriveLocked(d), nil
}

// newDriveLocked registers a drive and its sparse backing file.
func (st *store) newDriveLocked(sp driveSpec, op string) (*drive, *apiError) {
	d := &drive{
		seq: st.nextSeqLocked(), uuid: uuid.NewString(), name: sp.name, media: sp.media,
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
	if err := createBacking(st.drivePath(d.uuid), d.size); err != nil {
		return nil, newErr(http.StatusInternalServerError, "backend", "", "creating drive storage: %v", err)
	}
	st.drives[d.uuid] = d
	return d, nil
}

// settle ends a transitional status after its delay, if it is still the one
// set (a test may have made the drive unavailable meanwhile); true if so.
func (st *store) settle(id, op string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.settleLocked(id, op)
}

func (st *store) settleLocked(id, op string) bool {
	d := st.drives[id]
	if d == nil || d.op != op {
		return false
	}
	d.op = ""
	return true
}

// settleAfterLocked ends op on the drive once delay has passed.
func (st *store) settleAfterLocked(delay time.Duration, id, op string) {
	st.afterLocked(delay, func() { st.settle(id, op) })
}

// createDrives creates every spec or, when a tag is missing, none.
func (st *store) createDrives(specs []driveSpec) ([]map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sp := range specs {
		if e := st.checkTagsLocked(sp.tags); e != nil {
			return nil, e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	for _, sp := range specs {
		d, e := st.newDriveLocked(sp, stCreating)
		if e != nil {
			return nil, e
		}
		st.settleAfterLocked(st.delays.Create, d.uuid, stCreating)
		out = append(out, st.renderDriveLocked(d))
	}
	return out, nil
}

// putDrive edits a drive. On a drive mounted on a running server only name,
// meta, tags and allow_multimount apply and the rest is silently ignored
// (manual 7.6); otherwise a different size starts a resize.
func (st *store) putDrive(id string, sp driveSpec) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d, e := st.idleDriveLocked(id)
	if e != nil {
		return nil, e
	}
	if e := st.checkTagsLocked(sp.tags); e != nil {
		return nil, e
	}
	if !st.mountedOnRunningLocked(d) {
		if roundSize(sp.size) != d.size {
			if e := st.startResizeLocked(d, sp.size); e != nil {
				return nil, e
			}
		}
		d.media, d.affinities = sp.media, sp.affinities
	}
	d.name, d.meta, d.tags, d.allowMultimount = sp.name, sp.meta, sp.tags, sp.allowMultimount
	return st.renderDriveLocked(d), nil
}

// resizeDrive is the "update or fail" action (manual 7.7): a full drive
// definition, refused with 403 when the drive is on a running guest.
func (st *store) resizeDrive(id string, sp driveSpec) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d, e := st.idleDriveLocked(id)
	if e != nil {
		return nil, e
	}
	if st.mountedOnRunningLocked(d) {
		return nil, errPermission("Cannot resize drive mounted on a running guest")
	}
	if e := st.checkTagsLocked(sp.tags); e != nil {
		return nil, e
	}
	if e := st.startResizeLocked(d, sp.size); e != nil {
		return nil, e
	}
	d.name, d.media, d.meta, d.tags = sp.name, sp.media, sp.meta, sp.tags
	d.affinities, d.allowMultimount = sp.affinities, sp.allowMultimount
	return st.renderDriveLocked(d), nil
}

// startResizeLocked grows a drive: its backing file at once, its status
// resizing for the resize delay, then the guest device's capacity.
// Shrinking is a validation error.
func (st *store) startResizeLocked(d *drive, size int64) *apiError {
	size = roundSize(size)
	if size < d.size {
		return errValidation("size", "Drive size cannot be decreased from %d to %d", d.size, size)
	}
	if e := st.caps.checkSize(d.storageType, size); e != nil {
		return e
	}
	if err := growBacking(st.drivePath(d.uuid), size); err != nil {
		return newErr(http.StatusInternalServerError, "backend", "", "resizing drive storage: %v", err)
	}
	d.size, d.op = size, stResizing
	id := d.uuid
	st.afterLocked(st.delays.Resize, func() {
		if !st.settle(id, stResizing) {
			return
		}
		for _, g := range st.guests {
			g.refresh(id)
		}
		for _, g := range st.vms {
			g.refresh(st, id)
		}
	})
	return nil
}

// canDeleteDriveLocked: a drive in a transitional state cannot be deleted
// yet (503 concurrency); an unavailable one can.
func (st *store) canDeleteDriveLocked(id string) *apiError {
	d, e := st.driveLocked(id)
	if e != nil {
		return e
	}
	if !d.deleting && d.op != "" && d.op != stUnavailable {
		return d.busy()
	}
	return nil
}

// deleteDrives starts the deletion of every drive, or of none when one of
// them cannot be deleted.
func (st *store) deleteDrives(ids []string) *apiError {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range ids {
		if e := st.canDeleteDriveLocked(id); e != nil {
			return e
		}
	}
	for _, id := range ids {
		if e := st.deleteDriveLocked(id); e != nil {
			return e
		}
	}
	return nil
}

// deleteDriveLocked starts an asynchronous deletion. The API allows
// deleting a mounted drive (manual 7.9); it leaves its servers when it
// vanishes.
func (st *store) deleteDriveLocked(id string) *apiError {
	if e := st.canDeleteDriveLocked(id); e != nil {
		return e
	}
	d := st.drives[id]
	if d.deleting {
		return nil
	}
	d.deleting = true
	st.afterLocked(st.delays.Delete, func() { st.vanishDrive(id) })
	return nil
}

// vanishDrive is the end of a deletion: the drive is gone for good.
func (st *store) vanishDrive(id string) {
	var cleanup func()
	st.locked(func() { cleanup = st.vanishDriveLocked(id) })
	cleanup()
}

// vanishDriveLocked removes a drive from every server, with its snapshots
// (a snapshot is a diff against its drive and cannot outlive it). The
// returned func removes its files and guest device once the lock is free.
func (st *store) vanishDriveLocked(id string) func() {
	if st.drives[id] == nil {
		return func() {}
	}
	delete(st.drives, id)
	for _, v := range st.servers {
		v.drives = slices.DeleteFunc(v.drives, func(e srvDrive) bool { return e.drive == id })
		delete(v.detaching, id)
	}
	files := []string{st.drivePath(id)}
	for sid, sn := range st.snapshots {
		if sn.drive == id {
			delete(st.snapshots, sid)
			files = append(files, st.snapPath(sid))
		}
	}
	return func() {
		st.reconcileGuest(id)
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
}
