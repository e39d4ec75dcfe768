package cloudsim

import (
	"maps"
	"net/http"
	"os"
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

func (st *store) sortedSnapshotsLocked() []*snapshot {
	out := make([]*snapshot, 0, len(st.snapshots))
	for _, sn := range st.snapshots {
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (st *store) renderSnapshotLocked(sn *snapshot) map[string]any {
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
		"owner":          st.userRef(),
		"permissions":    []any{},
		"resource_uri":   uri("snapshots", sn.uuid),
		"status":         sn.status,
		"tags":           tagRefs(sn.tags),
		"timestamp":      sn.created.Format(snapshotTime),
		"uuid":           sn.uuid,
	}
}

// snapshotList renders every snapshot; the plain list already carries full
// objects (manual 8.2).
func (st *store) snapshotList() []listItem {
	st.mu.Lock()
	defer st.mu.Unlock()
	items := make([]listItem, 0, len(st.snapshots))
	for _, sn := range st.snapshots {
		items = append(items, listItem{
			seq: sn.seq, uuid: sn.uuid, name: sn.name, tags: sn.tags, tagNames: st.tagNamesLocked(sn.tags),
			drive: sn.drive, detail: st.renderSnapshotLocked(sn),
		})
	}
	return items
}

func (st *store) snapshotObject(id string) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sn := st.snapshots[id]
	if sn == nil {
		return nil, errNotExist("Snapshot %s does not exist", id)
	}
	return st.renderSnapshotLocked(sn), nil
}

func (st *store) snapshotCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.snapshots)
}

// snapCopy is a snapshot between its two locked steps: registered in
// creating, its drive's data still to be copied.
type snapCopy struct {
	in  *os.File
	sn  *snapshot
	out string
}

// createSnapshots takes snapshots of drives. The drives' bytes are copied
// before the answer, so a snapshot holds its drive as it was at this call.
func (st *store) createSnapshots(reqs []snapshotSpec) ([]map[string]any, *apiError) {
	copies, e := st.startSnapshots(reqs)
	if e != nil {
		return nil, e
	}
	for _, c := range copies {
		err := copySparseTo(c.in, c.out, c.sn.size)
		c.in.Close()
		if err != nil {
			logf("snapshot %s: copying drive data: %v", c.sn.uuid, err)
		}
	}
	return st.finishSnapshots(copies), nil
}

// startSnapshots checks every request (limits are "operation not allowed":
// 403 permission, manual 2.12), then registers the snapshots.
func (st *store) startSnapshots(reqs []snapshotSpec) ([]snapCopy, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	perDrive := map[string]int{}
	for _, sn := range st.snapshots {
		perDrive[sn.drive]++
	}
	total := len(st.snapshots)
	for _, q := range reqs {
		d := st.drives[q.drive]
		if d == nil || d.deleting {
			return nil, errValidation("drive", "Drive %s does not exist", q.drive)
		}
		if e := d.busy(); e != nil {
			return nil, e
		}
		if d.storageType == LocalNVMe {
			return nil, errPermission("Drives of storage type %s cannot be snapshotted", LocalNVMe)
		}
		if e := st.checkTagsLocked(q.tags); e != nil {
			return nil, e
		}
		total++
		perDrive[q.drive]++
		if total > st.caps.SnapshotsMax {
			return nil, errPermission("Snapshot limit reached: at most %d snapshots per account", st.caps.SnapshotsMax)
		}
		if perDrive[q.drive] > st.caps.SnapshotsMaxPerDrive {
			return nil, errPermission("Snapshot limit reached: at most %d snapshots per drive", st.caps.SnapshotsMaxPerDrive)
		}
	}
	var copies []snapCopy
	now := time.Now().UTC()
	for _, q := range reqs {
		d := st.drives[q.drive]
		in, err := os.Open(st.drivePath(d.uuid))
		if err != nil {
			for _, c := range copies {
				c.in.Close()
			}
			return nil, newErr(http.StatusInternalServerError, "backend", "", "reading drive: %v", err)
		}
		sn := &snapshot{
			seq: st.nextSeqLocked(), uuid: uuid.NewString(), drive: d.uuid, size: d.size, media: d.media,
			storageType: d.storageType, driveMeta: maps.Clone(d.meta), status: "creating",
			meta: q.meta, tags: q.tags, created: now,
			name: pick(q.name, d.uuid+"__"+now.Format("2006-01-02__15_04_05")),
		}
		st.snapshots[sn.uuid] = sn
		copies = append(copies, snapCopy{in: in, sn: sn, out: st.snapPath(sn.uuid)})
	}
	return copies, nil
}

// finishSnapshots starts the snapshot delay and renders the answer.
func (st *store) finishSnapshots(copies []snapCopy) []map[string]any {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]map[string]any, 0, len(copies))
	for _, c := range copies {
		id := c.sn.uuid
		st.afterLocked(st.delays.Snapshot, func() { st.snapshotAvailable(id) })
		out = append(out, st.renderSnapshotLocked(c.sn))
	}
	return out
}

// snapshotAvailable is the end of the snapshot delay.
func (st *store) snapshotAvailable(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if sn := st.snapshots[id]; sn != nil && sn.status == "creating" {
		sn.status = "available"
	}
}

// putSnapshot edits name, meta and tags; an absent meta or tags list is
// reset to empty (full-definition PUT), an absent name is kept.
func (st *store) putSnapshot(id string, sp snapshotEdit) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sn := st.snapshots[id]
	if sn == nil {
		return nil, errNotExist("Snapshot %s does not exist", id)
	}
	if e := st.checkTagsLocked(sp.tags); e != nil {
		return nil, e
	}
	if sp.hasName {
		sn.name = sp.name
	}
	sn.meta, sn.tags = sp.meta, sp.tags
	return st.renderSnapshotLocked(sn), nil
}

// canDeleteSnapshotLocked: a snapshot still being created cannot be
// deleted yet.
func (st *store) canDeleteSnapshotLocked(id string) *apiError {
	sn := st.snapshots[id]
	if sn == nil {
		return errNotExist("Snapshot %s does not exist", id)
	}
	if sn.status == "creating" {
		return errConcurrency("Snapshot %s is being created, try again later", id)
	}
	return nil
}

// deleteSnapshots starts the deletion of every snapshot, or of none when
// one of them cannot be deleted.
func (st *store) deleteSnapshots(ids []string) *apiError {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range ids {
		if e := st.canDeleteSnapshotLocked(id); e != nil {
			return e
		}
	}
	for _, id := range ids {
		if e := st.deleteSnapshotLocked(id); e != nil {
			return e
		}
	}
	return nil
}

// deleteSnapshotLocked starts an asynchronous deletion.
func (st *store) deleteSnapshotLocked(id string) *apiError {
	if e := st.canDeleteSnapshotLocked(id); e != nil {
		return e
	}
	sn := st.snapshots[id]
	if sn.deleting {
		return nil
	}
	sn.deleting = true
	st.afterLocked(st.delays.Delete, func() {
		if st.removeSnapshot(id) {
			_ = os.Remove(st.snapPath(id))
		}
	})
	return nil
}

// removeSnapshot is the end of a deletion; false if the snapshot went
// meanwhile (with its drive).
func (st *store) removeSnapshot(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.snapshots[id] == nil {
		return false
	}
	delete(st.snapshots, id)
	return true
}
