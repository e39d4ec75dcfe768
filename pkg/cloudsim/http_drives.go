package cloudsim

import (
	"net/http"
	"strings"
)

var driveFields = []string{"affinities", "allow_multimount", "grantees", "jobs", "licenses", "media",
	"meta", "mounted_on", "name", "owner", "permissions", "resource_uri", "runtime", "size",
	"snapshots", "status", "storage_type", "tags", "uuid"}

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

// decodeDrive reads the body of a PUT or resize: one full definition.
func decodeDrive(r *http.Request) (driveSpec, *apiError) {
	m, e := decodeObject(r)
	if e != nil {
		return driveSpec{}, e
	}
	return parseDrive(m)
}

// cloneSpec is the optional body of a clone action (drive or snapshot).
type cloneSpec struct {
	name, media, storageType string
	stGiven                  bool
	affinities               []any
}

func decodeClone(r *http.Request) (cloneSpec, *apiError) {
	var cs cloneSpec
	m, e := decodeObject(r)
	if e != nil {
		return cs, e
	}
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

func (a *api) listDrives(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.driveList(), false, listKind{fields: driveFields})
}

func (a *api) listDrivesDetail(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.driveList(), true, listKind{fields: driveFields})
}

func (a *api) getDrive(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := a.st.driveObject(r.PathValue("uuid"))
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

// createDrives takes one definition, {"objects": [...]} or a list; every
// one is checked before any drive is made.
func (a *api) createDrives(w http.ResponseWriter, r *http.Request) *apiError {
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
			sp.storageType = a.caps.DefaultStorageType
		}
		if e := a.caps.checkSize(sp.storageType, sp.size); e != nil {
			return e
		}
		specs = append(specs, sp)
	}
	out, e := a.st.createDrives(specs)
	if e != nil {
		return e
	}
	setLocation(w, "drives", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

func (a *api) putDrive(w http.ResponseWriter, r *http.Request) *apiError {
	sp, e := decodeDrive(r)
	if e != nil {
		return e
	}
	obj, e := a.st.putDrive(r.PathValue("uuid"), sp)
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) deleteDrive(w http.ResponseWriter, r *http.Request) *apiError {
	if e := a.st.deleteDrives([]string{r.PathValue("uuid")}); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

// deleteDrives is the bulk DELETE: {"objects": [{"uuid": ...}, ...]}.
func (a *api) deleteDrives(w http.ResponseWriter, r *http.Request) *apiError {
	ids, e := decodeUUIDs(r)
	if e != nil {
		return e
	}
	if e := a.st.deleteDrives(ids); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

func (a *api) resizeDrive(w http.ResponseWriter, r *http.Request) *apiError {
	sp, e := decodeDrive(r)
	if e != nil {
		return e
	}
	obj, e := a.st.resizeDrive(r.PathValue("uuid"), sp)
	if e != nil {
		return e
	}
	writeObjects(w, http.StatusAccepted, []map[string]any{obj})
	return nil
}

func (a *api) cloneDrive(w http.ResponseWriter, r *http.Request) *apiError {
	cs, e := decodeClone(r)
	if e != nil {
		return e
	}
	obj, e := a.st.cloneDrive(r.PathValue("uuid"), cs)
	if e != nil {
		return e
	}
	writeObjects(w, http.StatusAccepted, []map[string]any{obj})
	return nil
}
