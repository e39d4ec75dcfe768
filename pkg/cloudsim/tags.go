package cloudsim

import (
	"maps"
	"net/http"
	"slices"

	"github.com/google/uuid"
)

// Tags are separate objects; a resource's tags field lists references to
// them, and a tag's resources list is derived from those fields, so editing
// either side (tag PUT or resource PUT) keeps both consistent.
type tag struct {
	seq        int64
	uuid, name string
	meta       map[string]string
}

func tagRefs(ids []string) []any {
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, ref("tags", id))
	}
	return out
}

// tagNames resolves tag UUIDs for ?tag__name=. Caller holds s.mu.
func (s *Sim) tagNames(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if t := s.tags[id]; t != nil {
			out = append(out, t.name)
		}
	}
	return out
}

// checkTags requires every referenced tag to exist. Caller holds s.mu.
func (s *Sim) checkTags(ids []string) *apiError {
	for _, id := range ids {
		if s.tags[id] == nil {
			return errValidation("tags", "Tag %s does not exist", id)
		}
	}
	return nil
}

// taggable visits every resource that carries tags.
func (s *Sim) taggable(fn func(resType, id string, tags *[]string)) {
	for _, d := range s.drives {
		fn("drives", d.uuid, &d.tags)
	}
	for _, v := range s.servers {
		fn("servers", v.uuid, &v.tags)
	}
	for _, sn := range s.snapshots {
		fn("snapshots", sn.uuid, &sn.tags)
	}
}

func (s *Sim) renderTag(t *tag) map[string]any {
	type res struct {
		typ, id string
		seq     int64
	}
	var found []res
	s.taggable(func(typ, id string, tags *[]string) {
		if slices.Contains(*tags, t.uuid) {
			found = append(found, res{typ, id, s.resourceSeq(typ, id)})
		}
	})
	slices.SortFunc(found, func(a, b res) int { return int(a.seq - b.seq) })
	resources := make([]any, 0, len(found))
	for _, f := range found {
		resources = append(resources, map[string]any{
			"owner": s.userRef(), "res_type": f.typ, "resource_uri": uri(f.typ, f.id), "uuid": f.id,
		})
	}
	return map[string]any{
		"meta":         maps.Clone(t.meta),
		"name":         t.name,
		"owner":        s.userRef(),
		"resource_uri": uri("tags", t.uuid),
		"resources":    resources,
		"uuid":         t.uuid,
	}
}

func (s *Sim) resourceSeq(typ, id string) int64 {
	switch typ {
	case "drives":
		return s.drives[id].seq
	case "servers":
		return s.servers[id].seq
	default:
		return s.snapshots[id].seq
	}
}

// setTagResources makes exactly the listed resources carry the tag.
func (s *Sim) setTagResources(tagID string, ids []string) {
	s.taggable(func(_, id string, tags *[]string) {
		has := slices.Contains(*tags, tagID)
		want := slices.Contains(ids, id)
		switch {
		case want && !has:
			*tags = append(*tags, tagID)
		case !want && has:
			*tags = slices.DeleteFunc(*tags, func(x string) bool { return x == tagID })
		}
	})
}

var tagFields = []string{"meta", "name", "owner", "resource_uri", "resources", "uuid"}

func (s *Sim) routeTags(w http.ResponseWriter, r *http.Request, p []string) *apiError {
	switch {
	case len(p) == 0 || (len(p) == 1 && p[0] == "detail"):
		if r.Method == http.MethodPost && len(p) == 0 {
			return s.createTags(w, r)
		}
		if r.Method != http.MethodGet {
			if len(p) == 1 {
				return errMethod(r.Method, "GET")
			}
			return errMethod(r.Method, "GET", "POST")
		}
		s.mu.Lock()
		items := make([]listItem, 0, len(s.tags))
		for _, t := range s.tags {
			items = append(items, listItem{seq: t.seq, uuid: t.uuid, name: t.name, detail: s.renderTag(t)})
		}
		s.mu.Unlock()
		return writeList(w, r, items, true, listKind{fields: tagFields})
	case len(p) == 1:
		switch r.Method {
		case http.MethodGet, http.MethodPut, http.MethodDelete:
			return s.tagDetail(w, r, p[0])
		}
		return errMethod(r.Method, "GET", "PUT", "DELETE")
	case len(p) == 2:
		if r.Method != http.MethodGet {
			return errMethod(r.Method, "GET")
		}
		return s.listTagged(w, r, p[0], p[1])
	}
	return errNotExist("No resource at %s", r.URL.Path)
}

type tagSpec struct {
	name      string
	meta      map[string]string
	resources []string
}

func (s *Sim) parseTag(m map[string]any) (tagSpec, *apiError) {
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

// checkResources requires every tagged resource to exist. Caller holds s.mu.
func (s *Sim) checkResources(ids []string) *apiError {
	for _, id := range ids {
		if s.drives[id] == nil && s.servers[id] == nil && s.snapshots[id] == nil {
			return errValidation("resources", "Resource %s does not exist", id)
		}
	}
	return nil
}

func (s *Sim) createTags(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	specs := make([]tagSpec, 0, len(objs))
	for _, m := range objs {
		t, e := s.parseTag(m)
		if e != nil {
			return e
		}
		specs = append(specs, t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if e := s.checkResources(sp.resources); e != nil {
			return e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	for _, sp := range specs {
		t := &tag{seq: s.nextSeq(), uuid: uuid.NewString(), name: sp.name, meta: sp.meta}
		s.tags[t.uuid] = t
		s.setTagResources(t.uuid, sp.resources)
		out = append(out, s.renderTag(t))
	}
	setLocation(w, "tags", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

// tagDetail serves GET/PUT/DELETE /tags/{uuid}/. A PUT replaces the
// resources list whole: leaving it out untags everything.
func (s *Sim) tagDetail(w http.ResponseWriter, r *http.Request, id string) *apiError {
	var sp tagSpec
	if r.Method == http.MethodPut {
		m, e := decodeObject(r)
		if e != nil {
			return e
		}
		if sp, e = s.parseTag(m); e != nil {
			return e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tags[id]
	if t == nil {
		return errNotExist("Tag %s does not exist", id)
	}
	switch r.Method {
	case http.MethodDelete:
		s.setTagResources(id, nil)
		delete(s.tags, id)
		writeNoContent(w)
		return nil
	case http.MethodPut:
		if e := s.checkResources(sp.resources); e != nil {
			return e
		}
		t.name, t.meta = sp.name, sp.meta
		s.setTagResources(id, sp.resources)
	}
	writeObject(w, r, http.StatusOK, s.renderTag(t))
	return nil
}

// listTagged serves /tags/{uuid}/{drives|servers|snapshots}/.
func (s *Sim) listTagged(w http.ResponseWriter, r *http.Request, id, typ string) *apiError {
	s.mu.Lock()
	if s.tags[id] == nil {
		s.mu.Unlock()
		return errNotExist("Tag %s does not exist", id)
	}
	var items []listItem
	var kind listKind
	switch typ {
	case "drives":
		kind.fields = driveFields
		for _, d := range s.drives {
			if slices.Contains(d.tags, id) {
				items = append(items, listItem{seq: d.seq, uuid: d.uuid, name: d.name, detail: s.renderDrive(d)})
			}
		}
	case "servers":
		kind.fields = serverFields
		for _, v := range s.servers {
			if slices.Contains(v.tags, id) {
				items = append(items, listItem{seq: v.seq, uuid: v.uuid, name: v.name(), detail: s.renderServer(v)})
			}
		}
	case "snapshots":
		kind.fields = snapshotFields
		for _, sn := range s.snapshots {
			if slices.Contains(sn.tags, id) {
				items = append(items, listItem{seq: sn.seq, uuid: sn.uuid, name: sn.name, detail: s.renderSnapshot(sn)})
			}
		}
	default:
		s.mu.Unlock()
		return errNotExist("No resource at %s", r.URL.Path)
	}
	s.mu.Unlock()
	return writeList(w, r, items, true, kind)
}
