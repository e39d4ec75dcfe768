package cloudsigma

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Filter narrows a list call with the API's documented filters. Values in
// one field are ORed (sent comma separated, commas escaped); different
// fields are ANDed.
type Filter struct {
	Name         []string // exact names
	NameContains string
	Tag          []string // tag UUIDs
	UUID         []string
	// Drive lists the snapshots of these drives (snapshots only).
	Drive []string
}

func (f Filter) values() url.Values {
	q := url.Values{}
	add := func(key string, vals []string) {
		if len(vals) == 0 {
			return
		}
		q.Set(key, joinComma(vals))
	}
	add("name", f.Name)
	add("tag", f.Tag)
	add("uuid", f.UUID)
	add("drive", f.Drive)
	if f.NameContains != "" {
		q.Set("name__contains", escapeFilterValue(f.NameContains))
	}
	return q
}

// escapeFilterValue escapes what the manual (2.15) gives a meaning to: a
// comma splits an OR unless written "\,", and "\\," is a literal backslash
// followed by a separator. Any other backslash is an ordinary character and
// is sent as is; a trailing one is doubled by joinComma when a separator
// follows it.
func escapeFilterValue(v string) string {
	return strings.ReplaceAll(v, ",", `\,`)
}

// listAll follows every page of a list endpoint. It never relies on the
// default page size (20): it asks for explicit pages until the API says
// there are no more objects.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var all []T
	for offset := 0; ; {
		page, total, err := listPage[T](ctx, c, path, q, offset, c.cfg.PageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		offset += len(page)
		if len(page) == 0 || len(page) < c.cfg.PageSize || offset >= total {
			return all, nil
		}
	}
}

// listPage fetches one page and returns it with the filtered total count.
func listPage[T any](ctx context.Context, c *Client, path string, q url.Values, offset, limit int) ([]T, int, error) {
	pq := url.Values{}
	for k, v := range q {
		pq[k] = v
	}
	pq.Set("limit", strconv.Itoa(limit))
	pq.Set("offset", strconv.Itoa(offset))
	var resp struct {
		Meta    listMeta `json:"meta"`
		Objects []T      `json:"objects"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: path, query: pq}, &resp); err != nil {
		return nil, 0, err
	}
	return resp.Objects, int(resp.Meta.TotalCount), nil
}

// Page is one page of a list with the total number of matching objects.
type Page[T any] struct {
	Items []T
	Total int
}
