package cloudsim

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxJSONBody bounds JSON request bodies; image data goes through upload.
const maxJSONBody = 8 << 20

// decodeBody reads a JSON body into a generic value (numbers as
// json.Number). An empty body yields nil. Like the real API (Tastypie), a
// missing Content-Type means JSON, but a different one is refused.
func decodeBody(r *http.Request) (any, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, errValidation("", "The format indicated '%s' had no available deserialization method.", ct)
		}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, errValidation("", "reading request body: %v", err)
	}
	if len(raw) > maxJSONBody {
		return nil, errValidation("", "request body too large")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errValidation("", "Invalid JSON: %v", err)
	}
	return v, nil
}

// decodeObject reads a body that must be one JSON object (empty = {}).
func decodeObject(r *http.Request) (map[string]any, *apiError) {
	v, e := decodeBody(r)
	if e != nil {
		return nil, e
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errValidation("", "Expected a JSON object")
	}
	return m, nil
}

// decodeObjects accepts the three documented create forms: one object,
// {"objects": [...]}, or a bare list.
func decodeObjects(r *http.Request) ([]map[string]any, *apiError) {
	v, e := decodeBody(r)
	if e != nil {
		return nil, e
	}
	var list []any
	switch t := v.(type) {
	case nil:
		return nil, errValidation("", "Empty request body")
	case []any:
		list = t
	case map[string]any:
		if objs, ok := t["objects"]; ok {
			l, ok := objs.([]any)
			if !ok {
				return nil, errValidation("objects", "objects must be a list")
			}
			list = l
		} else {
			list = []any{t}
		}
	default:
		return nil, errValidation("", "Expected a JSON object or list")
	}
	out := make([]map[string]any, 0, len(list))
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, errValidation("objects", "Each object must be a JSON object")
		}
		out = append(out, m)
	}
	return out, nil
}

// getString returns a string field; null counts as absent.
func getString(m map[string]any, key string) (string, bool, *apiError) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", true, errValidation(key, "%s must be a string", key)
	}
	return s, true, nil
}

// getInt64 accepts an integer literal or a numeric string (the 002 examples
// send "size": "1024000000").
func getInt64(m map[string]any, key string) (int64, bool, *apiError) {
	v, ok := m[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var s string
	switch t := v.(type) {
	case json.Number:
		s = t.String()
	case string:
		s = strings.TrimSpace(t)
	default:
		return 0, true, errValidation(key, "%s must be an integer", key)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, true, errValidation(key, "%s must be an integer, got %q", key, s)
		}
		n = int64(f)
	}
	return n, true, nil
}

func getBool(m map[string]any, key string) (bool, bool, *apiError) {
	v, ok := m[key]
	if !ok || v == nil {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, true, errValidation(key, "%s must be a boolean", key)
	}
	return b, true, nil
}

// maxMetaKey is the documented limit on meta key length.
const maxMetaKey = 32

// getMeta validates a meta dict: string keys of at most 32 characters and
// string values. Absent means the default, an empty map.
func getMeta(m map[string]any) (map[string]string, *apiError) {
	v, ok := m["meta"]
	if !ok || v == nil {
		return map[string]string{}, nil
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, errValidation("meta", "meta must be a dictionary")
	}
	out := make(map[string]string, len(raw))
	for k, val := range raw {
		if len(k) > maxMetaKey {
			return nil, errValidation("meta", "meta key %q is longer than %d characters", k, maxMetaKey)
		}
		s, ok := val.(string)
		if !ok {
			return nil, errValidation("meta", "meta value of %q must be a string", k)
		}
		out[k] = s
	}
	return out, nil
}

// refUUID extracts a UUID from the forms a related field takes on input:
// "uuid", "/api/2.0/<kind>/uuid/", {"uuid": ...} or {"resource_uri": ...}.
func refUUID(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		s := strings.TrimSuffix(strings.TrimSpace(t), "/")
		if i := strings.LastIndex(s, "/"); i >= 0 {
			s = s[i+1:]
		}
		return s, s != ""
	case map[string]any:
		if u, ok := t["uuid"].(string); ok && u != "" {
			return u, true
		}
		if u, ok := t["resource_uri"].(string); ok {
			return refUUID(u)
		}
	}
	return "", false
}

// getRefs parses a list of related resources (tags, resources).
func getRefs(m map[string]any, key string) ([]string, *apiError) {
	v, ok := m[key]
	if !ok || v == nil {
		return []string{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errValidation(key, "%s must be a list", key)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		u, ok := refUUID(item)
		if !ok {
			return nil, errValidation(key, "invalid reference in %s", key)
		}
		out = append(out, u)
	}
	return out, nil
}

// getList returns a JSON list field as is (default empty).
func getList(m map[string]any, key string) ([]any, *apiError) {
	v, ok := m[key]
	if !ok || v == nil {
		return []any{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errValidation(key, "%s must be a list", key)
	}
	return list, nil
}

// deepCopy clones a decoded JSON value so stored state never aliases a
// request or a response.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}

// decodeUUIDs reads the body of a bulk DELETE: objects naming a UUID.
func decodeUUIDs(r *http.Request) ([]string, *apiError) {
	objs, e := decodeObjects(r)
	if e != nil {
		return nil, e
	}
	ids := make([]string, 0, len(objs))
	for _, m := range objs {
		id, ok := refUUID(m)
		if !ok {
			return nil, errValidation("uuid", "This field is required.")
		}
		ids = append(ids, id)
	}
	return ids, nil
}
