package cloudsigma

import (
	"context"
	"errors"
	"fmt"
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

func (f Filter) values() (url.Values, error) {
	q := url.Values{}
	var bad error
	add := func(key string, vals []string) {
		if len(vals) == 0 {
			return
		}
		for _, v := range vals {
			bad = errors.Join(bad, checkFilterValue(key, v))
		}
		q.Set(key, joinComma(vals))
	}
	add("name", f.Name)
	add("tag", f.Tag)
	add("uuid", f.UUID)
	add("drive", f.Drive)
	if f.NameContains != "" {
		bad = errors.Join(bad, checkFilterValue("name__contains", f.NameContains))
		q.Set("name__contains", escapeFilterValue(f.NameContains))
	}
	return q, bad
}

// checkFilterValue refuses a value the manual's escaping (2.15) cannot
// express: a backslash right before a comma. "\\," already means "a
// backslash, then a separator", so such a value would be split or matched
// as something else, and a list filtered by it would silently be wrong.
func checkFilterValue(key, v string) error {
	if strings.Contains(v, `\,`) {
		return fmt.Errorf("cloudsigma: the %s filter cannot express %q: a backslash before a comma has no escape in the API's filter syntax", key, v)
	}
	return nil
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
// default page size (20): it asks for explicit pages, and goes on until it
// has meta.total_count objects or gets an empty page. A page shorter than
// asked for does not end the list: the API may cap the page size.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var all []T
	for offset := 0; ; {
		page, total, err := listPage[T](ctx, c, path, q, offset, c.cfg.PageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		offset += len(page)
		if len(all) > c.cfg.MaxListItems {
			return nil, fmt.Errorf("cloudsigma: listing %s: %w: more than %d objects (raise the limit with --api-max-list-items, or narrow the filter)",
				path, ErrTooLarge, c.cfg.MaxListItems)
		}
		switch {
		case len(page) == 0, total >= 0 && offset >= total:
			return all, nil
		case total < 0 && len(page) < c.cfg.PageSize:
			return all, nil // no total_count: a short page is the last
		}
	}
}

// listPage fetches one page and returns it with the filtered total count,
// or -1 when the response carries no meta.total_count.
func listPage[T any](ctx context.Context, c *Client, path string, q url.Values, offset, limit int) ([]T, int, error) {
	pq := url.Values{}
	for k, v := range q {
		pq[k] = v
	}
	pq.Set("limit", strconv.Itoa(limit))
	pq.Set("offset", strconv.Itoa(offset))
	var resp struct {
		Meta struct {
			TotalCount *Int64 `json:"total_count"`
		} `json:"meta"`
		Objects []T `json:"objects"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: path, query: pq}, &resp); err != nil {
		return nil, 0, err
	}
	if resp.Meta.TotalCount == nil {
		return resp.Objects, -1, nil
	}
	return resp.Objects, int(*resp.Meta.TotalCount), nil
}

// listFiltered is listAll with f's query.
func listFiltered[T any](ctx context.Context, c *Client, path string, f Filter) ([]T, error) {
	q, err := f.values()
	if err != nil {
		return nil, err
	}
	return listAll[T](ctx, c, path, q)
}

// pageFiltered is listPage with f's query.
func pageFiltered[T any](ctx context.Context, c *Client, path string, f Filter, offset, limit int) (Page[T], error) {
	q, err := f.values()
	if err != nil {
		return Page[T]{}, err
	}
	items, total, err := listPage[T](ctx, c, path, q, offset, limit)
	return Page[T]{Items: items, Total: max(total, len(items))}, err
}

// Page is one page of a list with the total number of matching objects.
type Page[T any] struct {
	Items []T
	Total int
}
