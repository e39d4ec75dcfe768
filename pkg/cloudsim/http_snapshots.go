package cloudsim

import "net/http"

var snapshotFields = []string{"allocated_size", "drive", "grantees", "meta", "name", "owner",
	"permissions", "resource_uri", "status", "tags", "timestamp", "uuid"}

// snapshotSpec is one requested snapshot: {drive, name, meta, tags}.
type snapshotSpec struct {
	drive, name string
	meta        map[string]string
	tags        []string
}

// snapshotEdit is the body of a snapshot PUT.
type snapshotEdit struct {
	name    string
	hasName bool
	meta    map[string]string
	tags    []string
}

// listSnapshots serves both lists: the plain one already carries full
// objects (manual 8.2).
func (a *api) listSnapshots(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.snapshotList(), true, listKind{fields: snapshotFields, driveFilter: true})
}

func (a *api) getSnapshot(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := a.st.snapshotObject(r.PathValue("uuid"))
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) createSnapshots(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	reqs := make([]snapshotSpec, 0, len(objs))
	for _, m := range objs {
		var q snapshotSpec
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
	out, e := a.st.createSnapshots(reqs)
	if e != nil {
		return e
	}
	setLocation(w, "snapshots", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

func (a *api) putSnapshot(w http.ResponseWriter, r *http.Request) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	var sp snapshotEdit
	if sp.name, sp.hasName, e = getString(m, "name"); e != nil {
		return e
	}
	if sp.meta, e = getMeta(m); e != nil {
		return e
	}
	if sp.tags, e = getRefs(m, "tags"); e != nil {
		return e
	}
	obj, e := a.st.putSnapshot(r.PathValue("uuid"), sp)
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) deleteSnapshot(w http.ResponseWriter, r *http.Request) *apiError {
	if e := a.st.deleteSnapshots([]string{r.PathValue("uuid")}); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

// deleteSnapshots is the bulk DELETE: {"objects": [{"uuid": ...}, ...]}.
func (a *api) deleteSnapshots(w http.ResponseWriter, r *http.Request) *apiError {
	ids, e := decodeUUIDs(r)
	if e != nil {
		return e
	}
	if e := a.st.deleteSnapshots(ids); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

// cloneSnapshot answers the bare drive definition (manual 8.9).
func (a *api) cloneSnapshot(w http.ResponseWriter, r *http.Request) *apiError {
	cs, e := decodeClone(r)
	if e != nil {
		return e
	}
	obj, e := a.st.cloneSnapshot(r.PathValue("uuid"), cs)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusAccepted, obj)
	return nil
}
