package cloudsigma

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// SnapshotCreate is the definition of a new snapshot.
type SnapshotCreate struct {
	Drive string            `json:"drive"`
	Name  string            `json:"name,omitempty"`
	Meta  map[string]string `json:"meta,omitempty"`
}

func snapshotPath(uuid string) string { return "snapshots/" + url.PathEscape(uuid) + "/" }

// ListSnapshots returns every snapshot matching f (use f.Drive for the
// snapshots of given drives), following all pages.
func (c *Client) ListSnapshots(ctx context.Context, f Filter) ([]Snapshot, error) {
	return listFiltered[Snapshot](ctx, c, "snapshots/detail/", f)
}

// ListSnapshotsPage returns one page of snapshots matching f.
func (c *Client) ListSnapshotsPage(ctx context.Context, f Filter, offset, limit int) (Page[Snapshot], error) {
	return pageFiltered[Snapshot](ctx, c, "snapshots/detail/", f, offset, limit)
}

// GetSnapshot returns one snapshot.
func (c *Client) GetSnapshot(ctx context.Context, uuid string) (*Snapshot, error) {
	var s Snapshot
	if err := c.do(ctx, request{method: http.MethodGet, path: snapshotPath(uuid)}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CreateSnapshot snapshots a drive; the snapshot starts in status creating.
func (c *Client) CreateSnapshot(ctx context.Context, def SnapshotCreate) (*Snapshot, error) {
	var resp objectsOf[Snapshot]
	if err := c.do(ctx, request{method: http.MethodPost, path: "snapshots/", body: def}, &resp); err != nil {
		return nil, err
	}
	return resp.one("create snapshot")
}

// CloneSnapshot creates a drive from a snapshot; it starts in cloning_dst.
// The documented response is a bare drive definition whose resource_uri is
// an object; the wrapped {"objects": [...]} form is accepted too.
func (c *Client) CloneSnapshot(ctx context.Context, uuid string, def DriveClone) (*Drive, error) {
	q := url.Values{"do": {"clone"}}
	if len(def.Avoid) > 0 {
		q.Set("avoid", strings.Join(def.Avoid, ","))
	}
	var raw rawBody
	if err := c.do(ctx, request{method: http.MethodPost, path: snapshotPath(uuid) + "action/", query: q, body: def}, &raw); err != nil {
		return nil, err
	}
	if _, wrapped := raw["objects"]; wrapped {
		var o objectsOf[Drive]
		if err := raw.decodeInto(&o.Objects, "objects"); err != nil {
			return nil, err
		}
		return o.one("clone snapshot")
	}
	var d Drive
	if err := raw.decodeInto(&d, ""); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteSnapshot deletes a snapshot (asynchronously).
func (c *Client) DeleteSnapshot(ctx context.Context, uuid string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: snapshotPath(uuid)}, nil)
}
