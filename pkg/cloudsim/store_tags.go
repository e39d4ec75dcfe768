package cloudsim

import (
	"maps"
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

// tagNamesLocked resolves tag UUIDs for ?tag__name=.
func (st *store) tagNamesLocked(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if t := st.tags[id]; t != nil {
			out = append(out, t.name)
		}
	}
	return out
}

// checkTagsLocked requires every referenced tag to exist.
func (st *store) checkTagsLocked(ids []string) *apiError {
	for _, id := range ids {
		if st.tags[id] == nil {
			return errValidation("tags", "Tag %s does not exist", id)
		}
	}
	return nil
}

// taggable is a resource that carries tags, as the tag endpoints see it.
type taggable struct {
	kind   string // drives, servers or snapshots
	seq    int64
	uuid   string
	name   string
	tags   *[]string
	render func() map[string]any
}

// taggablesLocked lists every resource that carries tags.
func (st *store) taggablesLocked() []taggable {
	var out []taggable
	for _, d := range st.drives {
		out = append(out, taggable{"drives", d.seq, d.uuid, d.name, &d.tags, func() map[string]any { return st.renderDriveLocked(d) }})
	}
	for _, v := range st.servers {
		out = append(out, taggable{"servers", v.seq, v.uuid, v.name(), &v.tags, func() map[string]any { return st.renderServerLocked(v) }})
	}
	for _, sn := range st.snapshots {
		out = append(out, taggable{"snapshots", sn.seq, sn.uuid, sn.name, &sn.tags, func() map[string]any { return st.renderSnapshotLocked(sn) }})
	}
	return out
}

func (st *store) renderTagLocked(t *tag) map[string]any {
	var found []taggable
	for _, r := range st.taggablesLocked() {
		if slices.Contains(*r.tags, t.uuid) {
			found = append(found, r)
		}
	}
	slices.SortFunc(found, func(a, b taggable) int { return int(a.seq - b.seq) })
	resources := make([]any, 0, len(found))
	for _, f := range found {
		resources = append(resources, map[string]any{
			"owner": st.userRef(), "res_type": f.kind, "resource_uri": uri(f.kind, f.uuid), "uuid": f.uuid,
		})
	}
	return map[string]any{
		"meta":         maps.Clone(t.meta),
		"name":         t.name,
		"owner":        st.userRef(),
		"resource_uri": uri("tags", t.uuid),
		"resources":    resources,
		"uuid":         t.uuid,
	}
}

// setTagResourcesLocked makes exactly the listed resources carry the tag.
func (st *store) setTagResourcesLocked(tagID string, ids []string) {
	for _, r := range st.taggablesLocked() {
		has := slices.Contains(*r.tags, tagID)
		want := slices.Contains(ids, r.uuid)
		switch {
		case want && !has:
			*r.tags = append(*r.tags, tagID)
		case !want && has:
			*r.tags = slices.DeleteFunc(*r.tags, func(x string) bool { return x == tagID })
		}
	}
}

// checkResourcesLocked requires every tagged resource to exist.
func (st *store) checkResourcesLocked(ids []string) *apiError {
	for _, id := range ids {
		if st.drives[id] == nil && st.servers[id] == nil && st.snapshots[id] == nil {
			return errValidation("resources", "Resource %s does not exist", id)
		}
	}
	return nil
}

// tagList renders every tag for the list endpoints.
func (st *store) tagList() []listItem {
	st.mu.Lock()
	defer st.mu.Unlock()
	items := make([]listItem, 0, len(st.tags))
	for _, t := range st.tags {
		items = append(items, listItem{seq: t.seq, uuid: t.uuid, name: t.name, detail: st.renderTagLocked(t)})
	}
	return items
}

// createTags creates every spec or, when a resource is missing, none.
func (st *store) createTags(specs []tagSpec) ([]map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sp := range specs {
		if e := st.checkResourcesLocked(sp.resources); e != nil {
			return nil, e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	for _, sp := range specs {
		t := &tag{seq: st.nextSeqLocked(), uuid: uuid.NewString(), name: sp.name, meta: sp.meta}
		st.tags[t.uuid] = t
		st.setTagResourcesLocked(t.uuid, sp.resources)
		out = append(out, st.renderTagLocked(t))
	}
	return out, nil
}

func (st *store) tagObject(id string) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tags[id]
	if t == nil {
		return nil, errNotExist("Tag %s does not exist", id)
	}
	return st.renderTagLocked(t), nil
}

// putTag replaces a tag's resources list whole: leaving it out untags
// everything.
func (st *store) putTag(id string, sp tagSpec) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tags[id]
	if t == nil {
		return nil, errNotExist("Tag %s does not exist", id)
	}
	if e := st.checkResourcesLocked(sp.resources); e != nil {
		return nil, e
	}
	t.name, t.meta = sp.name, sp.meta
	st.setTagResourcesLocked(id, sp.resources)
	return st.renderTagLocked(t), nil
}

// deleteTag removes a tag, and it from every resource.
func (st *store) deleteTag(id string) *apiError {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tags[id] == nil {
		return errNotExist("Tag %s does not exist", id)
	}
	st.setTagResourcesLocked(id, nil)
	delete(st.tags, id)
	return nil
}

// taggedList renders the resources of one kind that carry a tag.
func (st *store) taggedList(id, kind string) ([]listItem, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tags[id] == nil {
		return nil, errNotExist("Tag %s does not exist", id)
	}
	var items []listItem
	for _, r := range st.taggablesLocked() {
		if r.kind == kind && slices.Contains(*r.tags, id) {
			items = append(items, listItem{seq: r.seq, uuid: r.uuid, name: r.name, detail: r.render()})
		}
	}
	return items, nil
}
