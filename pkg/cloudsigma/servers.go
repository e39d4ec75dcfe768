package cloudsigma

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
)

func serverPath(uuid string) string { return "servers/" + url.PathEscape(uuid) + "/" }

// GetServer returns a server with its full definition.
func (c *Client) GetServer(ctx context.Context, uuid string) (*Server, error) {
	var s Server
	if err := c.do(ctx, request{method: http.MethodGet, path: serverPath(uuid)}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListServers returns every server matching f, with details.
func (c *Client) ListServers(ctx context.Context, f Filter) ([]Server, error) {
	return listFiltered[Server](ctx, c, "servers/detail/", f)
}

// UpdateServerDrives replaces the drives list of a server with a PUT of its
// whole definition as last read: every other field, including those this
// client does not model, is written back unchanged. Attaching and detaching
// are this call; the caller serializes read-modify-write per server.
func (c *Client) UpdateServerDrives(ctx context.Context, s *Server, drives []ServerDrive) (*Server, error) {
	return c.UpdateServer(ctx, s, drives, nil)
}

// UpdateServer is UpdateServerDrives that also replaces the server's meta
// when meta is not nil (nil keeps it as read), so a change to the drives
// list and the meta that describes it travel in one PUT.
func (c *Client) UpdateServer(ctx context.Context, s *Server, drives []ServerDrive, meta map[string]string) (*Server, error) {
	if s.raw == nil {
		return nil, errors.New("cloudsigma: server was not read from the API; read it before updating")
	}
	body := s.raw.clone()
	if drives == nil {
		drives = []ServerDrive{}
	}
	if err := body.set("drives", drives); err != nil {
		return nil, err
	}
	if meta != nil {
		if err := body.set("meta", meta); err != nil {
			return nil, err
		}
	}
	var out Server
	if err := c.do(ctx, request{method: http.MethodPut, path: serverPath(s.UUID), body: body, readModifyWrite: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCapabilities returns the location's and account's limits.
func (c *Client) GetCapabilities(ctx context.Context) (*Capabilities, error) {
	var caps Capabilities
	if err := c.do(ctx, request{method: http.MethodGet, path: "capabilities/"}, &caps); err != nil {
		return nil, err
	}
	return &caps, nil
}

// GetJob returns one asynchronous job.
func (c *Client) GetJob(ctx context.Context, uuid string) (*Job, error) {
	var j Job
	if err := c.do(ctx, request{method: http.MethodGet, path: "jobs/" + url.PathEscape(uuid) + "/"}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListJobs returns every job, following all pages.
func (c *Client) ListJobs(ctx context.Context) ([]Job, error) {
	return listAll[Job](ctx, c, "jobs/", nil)
}

// rawBody defers decoding of a response whose shape varies.
type rawBody map[string]json.RawMessage

// decodeInto decodes field key of the body into v, or the whole body when
// key is empty. A missing key leaves v untouched.
func (r rawBody) decodeInto(v any, key string) error {
	if key == "" {
		b, err := json.Marshal(map[string]json.RawMessage(r))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	if b, ok := r[key]; ok {
		return json.Unmarshal(b, v)
	}
	return nil
}
