package cloudsigma

import (
	"context"
	"net/http"
)

// Tag is a named label; objects list their tags, and a tag lists its
// resources.
type Tag struct {
	UUID      string `json:"uuid"`
	Name      string `json:"name"`
	Resources []Ref  `json:"resources"`
	Meta      Meta   `json:"meta"`
}

// ListTags returns every tag matching f.
func (c *Client) ListTags(ctx context.Context, f Filter) ([]Tag, error) {
	return listFiltered[Tag](ctx, c, "tags/", f)
}

// CreateTag creates a tag with no resources. New drives join a tag by
// listing it in their own tags, which avoids rewriting the tag's resources
// list (replaced whole on update) and racing with other writers.
func (c *Client) CreateTag(ctx context.Context, name string) (*Tag, error) {
	var resp objectsOf[Tag]
	body := map[string]any{"name": name}
	if err := c.do(ctx, request{method: http.MethodPost, path: "tags/", body: body}, &resp); err != nil {
		return nil, err
	}
	return resp.one("create tag")
}
