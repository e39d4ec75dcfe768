package cloudsigma

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DriveCreate is the definition of a new drive.
type DriveCreate struct {
	Name            string            `json:"name"`
	Size            int64             `json:"size"`
	Media           string            `json:"media"` // "disk" when empty
	StorageType     string            `json:"storage_type,omitempty"`
	Meta            map[string]string `json:"meta,omitempty"`
	Tags            []string          `json:"tags,omitempty"` // tag UUIDs
	AllowMultimount bool              `json:"allow_multimount,omitempty"`
	Affinities      []string          `json:"affinities,omitempty"`
	// Avoid lists drive or server UUIDs to keep the new drive apart from.
	// It is the avoid GET parameter of the create call (POST
	// /drives/?avoid=a,b), not a field of the definition.
	Avoid []string `json:"-"`
}

// DriveUpdate changes a drive's name, meta, tags or multimount flag (what
// the API changes even on a running server). Nil fields keep their value;
// Meta replaces the whole map, as the API does.
type DriveUpdate struct {
	Name            *string
	Meta            map[string]string
	Tags            []string
	AllowMultimount *bool
}

// DriveClone is the optional body of a clone action.
type DriveClone struct {
	Name        string   `json:"name,omitempty"`
	Media       string   `json:"media,omitempty"`
	StorageType string   `json:"storage_type,omitempty"`
	Affinities  []string `json:"affinities,omitempty"`
	Avoid       []string `json:"-"` // drive or server UUIDs: the avoid GET parameter
}

func drivePath(uuid string) string { return "drives/" + url.PathEscape(uuid) + "/" }

// ListDrives returns every drive matching f with full details, following all
// pages.
func (c *Client) ListDrives(ctx context.Context, f Filter) ([]Drive, error) {
	return listFiltered[Drive](ctx, c, "drives/detail/", f)
}

// ListDrivesPage returns one page of detailed drives matching f.
func (c *Client) ListDrivesPage(ctx context.Context, f Filter, offset, limit int) (Page[Drive], error) {
	return pageFiltered[Drive](ctx, c, "drives/detail/", f, offset, limit)
}

// GetDrive returns one drive.
func (c *Client) GetDrive(ctx context.Context, uuid string) (*Drive, error) {
	var d Drive
	if err := c.do(ctx, request{method: http.MethodGet, path: drivePath(uuid)}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// CreateDrive creates one drive; it starts in status creating.
func (c *Client) CreateDrive(ctx context.Context, def DriveCreate) (*Drive, error) {
	if def.Media == "" {
		def.Media = "disk"
	}
	var q url.Values
	if len(def.Avoid) > 0 {
		q = url.Values{"avoid": {strings.Join(def.Avoid, ",")}}
	}
	var resp objectsOf[Drive]
	if err := c.do(ctx, request{method: http.MethodPost, path: "drives/", query: q, body: def}, &resp); err != nil {
		return nil, err
	}
	return resp.one("create drive")
}

// UpdateDrive edits name, meta or tags with a PUT of the drive's current
// definition, so fields not being changed are written back as they are.
func (c *Client) UpdateDrive(ctx context.Context, d *Drive, u DriveUpdate) (*Drive, error) {
	body, err := writable(d.raw)
	if err != nil {
		return nil, err
	}
	if u.Name != nil {
		err = errors.Join(err, body.set("name", *u.Name))
	}
	if u.Meta != nil {
		err = errors.Join(err, body.set("meta", u.Meta))
	}
	if u.Tags != nil {
		err = errors.Join(err, body.set("tags", u.Tags))
	}
	if u.AllowMultimount != nil {
		err = errors.Join(err, body.set("allow_multimount", *u.AllowMultimount))
	}
	if err != nil {
		return nil, err
	}
	var out Drive
	if err := c.do(ctx, request{method: http.MethodPut, path: drivePath(d.UUID), body: body, readModifyWrite: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResizeDrive grows a drive with the resize action. The action takes a full
// drive definition (missing meta or tags may be wiped), so the body is the
// drive as last read with only size changed. It fails with a permission
// error while the drive is mounted on a running server.
func (c *Client) ResizeDrive(ctx context.Context, d *Drive, newSize int64) (*Drive, error) {
	body, err := writable(d.raw)
	if err != nil {
		return nil, err
	}
	if err := body.set("size", newSize); err != nil {
		return nil, err
	}
	var resp objectsOf[Drive]
	r := request{method: http.MethodPost, path: drivePath(d.UUID) + "action/", query: url.Values{"do": {"resize"}}, body: body, readModifyWrite: true}
	if err := c.do(ctx, r, &resp); err != nil {
		return nil, err
	}
	return resp.one("resize drive")
}

// CloneDrive starts a copy of a drive; the copy starts in cloning_dst.
func (c *Client) CloneDrive(ctx context.Context, uuid string, def DriveClone) (*Drive, error) {
	q := url.Values{"do": {"clone"}}
	if len(def.Avoid) > 0 {
		q.Set("avoid", strings.Join(def.Avoid, ","))
	}
	var resp objectsOf[Drive]
	if err := c.do(ctx, request{method: http.MethodPost, path: drivePath(uuid) + "action/", query: q, body: def}, &resp); err != nil {
		return nil, err
	}
	return resp.one("clone drive")
}

// DeleteDrive deletes a drive. The API deletes mounted drives too; callers
// that care must check first. Deletion is asynchronous.
func (c *Client) DeleteDrive(ctx context.Context, uuid string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: drivePath(uuid)}, nil)
}

// writable is an object's JSON without the fields the API computes, ready to
// send back in a full-definition update.
func writable(raw object) (object, error) {
	if raw == nil {
		return nil, errors.New("cloudsigma: object was not read from the API; read it before updating")
	}
	o := raw.clone()
	for _, k := range []string{"jobs", "mounted_on", "owner", "resource_uri", "runtime", "snapshots", "status", "uuid", "grantees", "permissions"} {
		delete(o, k)
	}
	return o, nil
}

// objectsOf is the {"objects": [...]} wrapper of create and action responses.
type objectsOf[T any] struct {
	Objects []T `json:"objects"`
}

func (o objectsOf[T]) one(what string) (*T, error) {
	if len(o.Objects) != 1 {
		return nil, fmt.Errorf("cloudsigma: %s: expected one object in the response, got %d", what, len(o.Objects))
	}
	return &o.Objects[0], nil
}

func joinComma(vals []string) string {
	esc := make([]string, len(vals))
	for i, v := range vals {
		esc[i] = escapeFilterValue(v)
		if i < len(vals)-1 && strings.HasSuffix(v, `\`) {
			esc[i] += `\` // "\\," keeps the backslash and still splits
		}
	}
	return strings.Join(esc, ",")
}
