package cloudsim

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// defaultLimit is the documented page size when no limit is given.
const defaultLimit = 20

// listItem is one object as the filters and the renderer see it.
type listItem struct {
	seq      int64
	uuid     string
	name     string
	tags     []string // tag UUIDs
	tagNames []string
	drive    string // snapshots: the drive UUID
	detail   map[string]any
	short    map[string]any // nil = same as detail
}

// listKind describes what a resource's list accepts.
type listKind struct {
	fields      []string // field names: filtering on any other one is a 400
	driveFilter bool     // snapshots accept ?drive=
}

// reserved query parameters that are not filters.
var reserved = map[string]bool{"limit": true, "offset": true, "fields": true, "format": true, "do": true}

// writeList filters, pages and trims items as the manual's chapters 2.15 and
// 3 describe, then writes {"meta": ..., "objects": [...]}.
func writeList(w http.ResponseWriter, r *http.Request, items []listItem, detail bool, kind listKind) *apiError {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	for _, key := range keys {
		if reserved[key] {
			continue
		}
		match, e := filterFor(key, kind)
		if e != nil {
			return e
		}
		if match == nil {
			continue // not a field: ignored, as the real API does
		}
		for _, raw := range q[key] { // repeated parameters are ANDed
			alts := splitOr(raw)
			items = slices.DeleteFunc(items, func(it listItem) bool {
				return !slices.ContainsFunc(alts, func(v string) bool { return match(it, v) })
			})
		}
	}
	limit, offset, e := paging(q)
	if e != nil {
		return e
	}
	total := len(items)
	page := items
	if offset >= len(page) {
		page = nil
	} else {
		page = page[offset:]
	}
	if limit > 0 && len(page) > limit {
		page = page[:limit]
	}
	fields := parseFields(q.Get("fields"))
	objects := make([]map[string]any, 0, len(page))
	for _, it := range page {
		// ?fields= names the returned fields (manual 7.2), so on a plain
		// list it selects from the whole definition, not the short one.
		obj := it.detail
		if !detail && it.short != nil && fields == nil {
			obj = it.short
		}
		objects = append(objects, trimFields(obj, fields))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"meta":    map[string]any{"limit": limit, "offset": offset, "total_count": total},
		"objects": objects,
	})
	return nil
}

// filterFor returns the matcher of one query key, nil for keys that are not
// fields (ignored), or a 400 for fields that do not allow filtering.
func filterFor(key string, kind listKind) (func(listItem, string) bool, *apiError) {
	switch key {
	case "name":
		return func(it listItem, v string) bool { return it.name == v }, nil
	case "name__contains":
		return func(it listItem, v string) bool { return strings.Contains(it.name, v) }, nil
	case "uuid":
		return func(it listItem, v string) bool { return it.uuid == v }, nil
	case "tag":
		return func(it listItem, v string) bool { return slices.Contains(it.tags, v) }, nil
	case "tag__name":
		return func(it listItem, v string) bool { return slices.Contains(it.tagNames, v) }, nil
	case "drive":
		if kind.driveFilter {
			return func(it listItem, v string) bool { return it.drive == v }, nil
		}
	}
	base, _, _ := strings.Cut(key, "__")
	if slices.Contains(kind.fields, base) {
		return nil, errValidation(key, "The '%s' field does not allow filtering.", base)
	}
	return nil, nil
}

// splitOr splits a filter value on commas. "\," is a literal comma and
// "\\," a literal backslash followed by a separating comma (manual 2.15).
func splitOr(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == '\\' && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == ',':
			cur.WriteByte('\\')
			out = append(out, cur.String())
			cur.Reset()
			i += 2
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

func paging(q url.Values) (limit, offset int, e *apiError) {
	limit = defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errValidation("limit", "Invalid limit '%s' provided. Please provide a positive integer >= 0.", v)
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errValidation("offset", "Invalid offset '%s' provided. Please provide a positive integer >= 0.", v)
		}
		offset = n
	}
	return limit, offset, nil
}

// trimFields keeps only the named fields (?fields=a,b); nil keeps all.
func trimFields(obj map[string]any, fields []string) map[string]any {
	if fields == nil {
		return obj
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		if v, ok := obj[f]; ok {
			out[f] = v
		}
	}
	return out
}

// parseFields splits ?fields=a,b (the manual's example has a space after
// the comma); nil when absent.
func parseFields(f string) []string {
	var fields []string
	for _, name := range strings.Split(f, ",") {
		if name = strings.TrimSpace(name); name != "" {
			fields = append(fields, name)
		}
	}
	return fields
}

// writeObject writes a single object, honouring ?fields=.
func writeObject(w http.ResponseWriter, r *http.Request, status int, obj map[string]any) {
	writeJSON(w, status, trimFields(obj, parseFields(r.URL.Query().Get("fields"))))
}

// setLocation sets the Location header of a 201 (manual 2.12: "The
// Location response header contains the URI of the newly created object")
// when exactly one object was created.
func setLocation(w http.ResponseWriter, kind string, created []map[string]any) {
	if len(created) != 1 {
		return
	}
	if id, ok := created[0]["uuid"].(string); ok {
		w.Header().Set("Location", uri(kind, id))
	}
}

// writeObjects writes the {"objects": [...]} envelope of creates and
// asynchronous actions.
func writeObjects(w http.ResponseWriter, status int, objs []map[string]any) {
	writeJSON(w, status, map[string]any{"objects": objs})
}
