package cloudsim

import "net/http"

var tagFields = []string{"meta", "name", "owner", "resource_uri", "resources", "uuid"}

type tagSpec struct {
	name      string
	meta      map[string]string
	resources []string
}

func parseTag(m map[string]any) (tagSpec, *apiError) {
	var t tagSpec
	name, ok, e := getString(m, "name")
	if e != nil || !ok {
		return t, orRequired(e, "name")
	}
	t.name = name
	if t.meta, e = getMeta(m); e != nil {
		return t, e
	}
	t.resources, e = getRefs(m, "resources")
	return t, e
}

// listTags serves both lists: tags have no short form.
func (a *api) listTags(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.tagList(), true, listKind{fields: tagFields})
}

func (a *api) createTags(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	specs := make([]tagSpec, 0, len(objs))
	for _, m := range objs {
		t, e := parseTag(m)
		if e != nil {
			return e
		}
		specs = append(specs, t)
	}
	out, e := a.st.createTags(specs)
	if e != nil {
		return e
	}
	setLocation(w, "tags", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

func (a *api) getTag(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := a.st.tagObject(r.PathValue("uuid"))
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) putTag(w http.ResponseWriter, r *http.Request) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	sp, e := parseTag(m)
	if e != nil {
		return e
	}
	obj, e := a.st.putTag(r.PathValue("uuid"), sp)
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) deleteTag(w http.ResponseWriter, r *http.Request) *apiError {
	if e := a.st.deleteTag(r.PathValue("uuid")); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

// listTagged makes the handler of /tags/{uuid}/<kind>/: the tag's drives,
// servers or snapshots, in full.
func (a *api) listTagged(kind string, fields []string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		items, e := a.st.taggedList(r.PathValue("uuid"), kind)
		if e != nil {
			return e
		}
		return writeList(w, r, items, true, listKind{fields: fields})
	}
}
