package controller

import (
	"context"
	"slices"
	"sync"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// clusterTag is the tag every drive of this cluster carries, so ListVolumes
// asks the API for our drives only.
func (c *Service) clusterTag() string { return "csi-cluster-" + c.clusterID }

// tagUUID finds or creates a tag by name.
func (c *Service) tagUUID(ctx context.Context, name string, create bool) (string, error) {
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	if id, ok := c.tags.get(name); ok {
		return id, nil
	}
	var id string
	tags, err := c.cloud.ListTags(ctx, cloudsigma.Filter{Name: []string{name}})
	if err != nil {
		return "", cloudError(err, "listing tags")
	}
	switch {
	case len(tags) > 0:
		id = tags[0].UUID
	case !create:
		return "", nil
	default:
		t, err := c.cloud.CreateTag(ctx, name)
		if err != nil {
			return "", cloudError(err, "creating tag "+name)
		}
		id = t.UUID
	}
	c.tags.put(name, id)
	return id, nil
}

// driveTags is the cluster tag plus the StorageClass's tags, as UUIDs.
func (c *Service) driveTags(ctx context.Context, p volumeParams) ([]string, error) {
	var out []string
	for _, name := range append([]string{c.clusterTag()}, p.tags...) {
		id, err := c.tagUUID(ctx, name, true)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// withTags calls write with the UUIDs of the drive's tags. A tag deleted by
// hand stays in the cache and the API rejects it: then the tags are looked
// up (or created) again and write runs once more.
func (c *Service) withTags(ctx context.Context, p volumeParams, write func(tags []string) error) error {
	for attempt := 0; ; attempt++ {
		tags, err := c.driveTags(ctx, p)
		if err != nil {
			return err
		}
		err = write(tags)
		if attempt > 0 || !(cloudsigma.IsValidation(err) || cloudsigma.IsNotFound(err)) {
			return err
		}
		c.tags.forget()
	}
}

// tagRefs merges new tag UUIDs into a drive's existing tags.
func tagRefs(d *cloudsigma.Drive, add []string) []string {
	var out []string
	for _, t := range d.Tags {
		out = append(out, t.UUID)
	}
	for _, t := range add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// tagCache remembers tag UUIDs by name: the driver never renames a tag, and
// a tag deleted by hand is forgotten when the API rejects it (withTags).
type tagCache struct {
	mu  sync.Mutex
	ids map[string]string
}

func (t *tagCache) get(name string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.ids[name]
	return id, ok
}

func (t *tagCache) put(name, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[string]string{}
	}
	t.ids[name] = id
}

func (t *tagCache) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.ids)
}
