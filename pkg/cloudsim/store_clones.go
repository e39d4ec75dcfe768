package cloudsim

import (
	"maps"
	"net/http"
	"os"
)

// driveCopy is a clone between its two locked steps: the source is open
// and the new drive exists in cloning_dst. The copy itself runs unlocked;
// the transitional states keep both ends from being changed meanwhile.
type driveCopy struct {
	in       *os.File
	src, dst string // drive UUIDs; src is "" when restoring a snapshot
	target   *drive // the new drive
	job      *job   // nil when restoring a snapshot
}

// checkCloneTarget validates the storage type and size of a new copy.
func (st *store) checkCloneTarget(stype string, size int64) *apiError {
	if _, ok := st.caps.Drives[stype]; !ok {
		return errValidation("storage_type", "Unknown storage type %q", stype)
	}
	if stype == LocalNVMe {
		return errPermission("Drives of storage type %s cannot be created by cloning", LocalNVMe)
	}
	return st.caps.checkSize(stype, size)
}

// cloneDrive copies a drive (manual 7.10): the new drive answers in
// cloning_dst, the source stays cloning_src until the clone delay has
// passed, and a drive_clone job is on both.
func (st *store) cloneDrive(id string, cs cloneSpec) (obj map[string]any, e *apiError) {
	c, e := st.startDriveClone(id, cs)
	if e != nil {
		return nil, e
	}
	defer c.in.Close()
	err := copySparseTo(c.in, st.drivePath(c.dst), c.target.size)
	var cleanup func()
	st.locked(func() { obj, cleanup, e = st.finishDriveCloneLocked(c, err) })
	cleanup()
	return obj, e
}

func (st *store) startDriveClone(id string, cs cloneSpec) (*driveCopy, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	src := st.drives[id]
	if src == nil {
		return nil, errNotExist("Drive %s does not exist", id)
	}
	// A drive being cloned can be cloned again: the copies only read it
	// (the manual's clone naming example clones one drive repeatedly).
	if src.deleting || src.op != stCloningSrc {
		if e := src.busy(); e != nil {
			return nil, e
		}
	}
	if src.storageType == LocalNVMe {
		return nil, errPermission("Drives of storage type %s cannot be cloned", LocalNVMe)
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
	if e := st.checkCloneTarget(sp.storageType, sp.size); e != nil {
		return nil, e
	}
	in, err := os.Open(st.drivePath(src.uuid))
	if err != nil {
		return nil, newErr(http.StatusInternalServerError, "backend", "", "reading source drive: %v", err)
	}
	dst, e := st.newDriveLocked(sp, stCloningDst)
	if e != nil {
		in.Close()
		return nil, e
	}
	dst.licenses, _ = deepCopy(src.licenses).([]any)
	j := st.newJobLocked("drive_clone", []string{uri("drives", src.uuid), uri("drives", dst.uuid)}, st.delays.Clone)
	src.jobs = append(src.jobs, j.uuid)
	dst.jobs = append(dst.jobs, j.uuid)
	src.op = stCloningSrc
	src.clones++
	return &driveCopy{in: in, src: src.uuid, dst: dst.uuid, target: dst, job: j}, nil
}

// finishDriveCloneLocked answers the clone once the data is copied; a failed
// copy removes the new drive (the returned cleanup finishes that).
func (st *store) finishDriveCloneLocked(c *driveCopy, err error) (map[string]any, func(), *apiError) {
	if err != nil {
		st.cloneDoneLocked(c.src)
		cleanup := st.vanishDriveLocked(c.dst)
		c.job.finish("failed")
		return nil, cleanup, newErr(http.StatusInternalServerError, "backend", "", "copying drive: %v", err)
	}
	st.afterLocked(st.delays.Clone, func() { st.endDriveClone(c) })
	return st.renderDriveLocked(c.target), func() {}, nil
}

// endDriveClone is the end of the clone delay.
func (st *store) endDriveClone(c *driveCopy) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cloneDoneLocked(c.src)
	st.settleLocked(c.dst, stCloningDst)
	c.job.finish("success")
}

// cloneDoneLocked ends one clone of a source drive; the last one to finish
// clears cloning_src.
func (st *store) cloneDoneLocked(id string) {
	d := st.drives[id]
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

// cloneSnapshot restores a snapshot to a new drive (manual 8.9). The answer
// is the bare drive definition, and its resource_uri is an object, exactly
// as the manual's example and CloudSigma's recorded responses show.
func (st *store) cloneSnapshot(id string, cs cloneSpec) (obj map[string]any, e *apiError) {
	c, e := st.startSnapshotClone(id, cs)
	if e != nil {
		return nil, e
	}
	defer c.in.Close()
	err := copySparseTo(c.in, st.drivePath(c.dst), c.target.size)
	var cleanup func()
	st.locked(func() { obj, cleanup, e = st.finishSnapshotCloneLocked(c, err) })
	cleanup()
	return obj, e
}

func (st *store) startSnapshotClone(id string, cs cloneSpec) (*driveCopy, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sn := st.snapshots[id]
	if sn == nil {
		return nil, errNotExist("Snapshot %s does not exist", id)
	}
	if sn.status != "available" || sn.deleting {
		return nil, errConcurrency("Snapshot %s is %s, try again later", id, sn.status)
	}
	sp := driveSpec{
		name: pick(cs.name, sn.name), media: pick(cs.media, pick(sn.media, "disk")), size: sn.size,
		storageType: sn.storageType, storageTypeGiven: cs.stGiven,
		meta: maps.Clone(sn.driveMeta), affinities: cs.affinities,
	}
	if cs.stGiven {
		sp.storageType = cs.storageType
	}
	if e := st.checkCloneTarget(sp.storageType, sp.size); e != nil {
		return nil, e
	}
	in, err := os.Open(st.snapPath(sn.uuid))
	if err != nil {
		return nil, newErr(http.StatusInternalServerError, "backend", "", "reading snapshot: %v", err)
	}
	dst, e := st.newDriveLocked(sp, stCloningDst)
	if e != nil {
		in.Close()
		return nil, e
	}
	return &driveCopy{in: in, dst: dst.uuid, target: dst}, nil
}

// finishSnapshotCloneLocked answers the restore once the data is copied.
func (st *store) finishSnapshotCloneLocked(c *driveCopy, err error) (map[string]any, func(), *apiError) {
	if err != nil {
		cleanup := st.vanishDriveLocked(c.dst)
		return nil, cleanup, newErr(http.StatusInternalServerError, "backend", "", "copying snapshot: %v", err)
	}
	st.settleAfterLocked(st.delays.Clone, c.dst, stCloningDst)
	obj := st.renderDriveLocked(c.target)
	obj["resource_uri"] = ref("drives", c.dst)
	return obj, func() {}, nil
}

func pick(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
