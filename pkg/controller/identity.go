package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// Content is the part of the API the identity evidence needs: a range of a
// drive's image (the download endpoint with an HTTP Range).
type Content interface {
	ReadDriveRange(ctx context.Context, uuid string, off, n int64) ([]byte, error)
}

// DefaultWindow bounds how long an attach of a drive the node cannot tell
// from another (same size, same content: blank) keeps the next such drive
// from attaching to the same server (docs/identity.md).
const DefaultWindow = 5 * time.Minute

// identityEvidence is what publish_context carries for the node besides
// the drive's UUID, channel and size: the digest of its first bytes. A
// drive the node could not tell from another one attached moments ago
// waits (enterWindow).
func (c *Service) identityEvidence(ctx context.Context, node string, d *cloudsigma.Drive) (map[string]string, error) {
	digest, err := c.contentDigest(ctx, d.UUID)
	if err != nil {
		return nil, cloudError(err, "publishing drive "+d.UUID)
	}
	if digest == "" {
		return nil, nil
	}
	if err := c.enterWindow(ctx, node, d.UUID, int64(d.Size), digest); err != nil {
		return nil, cloudError(err, "publishing drive "+d.UUID)
	}
	return map[string]string{params.PublishContentDigest: digest}, nil
}

// contentDigest reads the drive's first params.ContentProbeBytes through
// the API: the node of a guest without usable serials finds the drive's
// device by them. Where the operator declared UUID serials
// (Config.SerialsOnly) it costs nothing and returns "".
func (c *Service) contentDigest(ctx context.Context, volID string) (string, error) {
	if c.serialsOnly {
		return "", nil
	}
	b, err := c.content.ReadDriveRange(ctx, volID, 0, params.ContentProbeBytes)
	if err != nil {
		return "", fmt.Errorf("%w (reading the first %d bytes of drive %s, the evidence a node without drive serials identifies it by; "+
			"where the guests show UUID serials, --drive-identity=uuid-serial skips this read): %w", errEvidence, params.ContentProbeBytes, volID, err)
	}
	return params.ContentDigest(b), nil
}

// window is the exclusive attach window: per server, the drives attached
// recently whose (size, digest) the node could not tell from another drive
// of the same (size, digest). A drive waits (Unavailable, the attacher
// retries) while another such drive is in the window; the window of a
// drive ends when its content changes (the node formatted it), when it is
// detached, or after DefaultWindow. The node never relies on the window for
// safety, only for progress: two indistinguishable devices make it refuse,
// never guess.
type window struct {
	mu   sync.Mutex
	open map[string]map[string]windowEntry // server -> drive -> entry
	max  time.Duration
}

type windowEntry struct {
	size   int64
	digest string
	since  time.Time
}

// enter admits volID (size bytes, digest) to node's window, or returns
// errIndistinct naming the drive it waits for. A drive whose content is in
// no other open entry enters at no cost; one that matches another costs one
// range read of that other drive.
func (c *Service) enterWindow(ctx context.Context, node, volID string, size int64, digest string) error {
	if digest == "" {
		return nil
	}
	w := &c.window
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		w.open = map[string]map[string]windowEntry{}
	}
	if w.open[node] == nil {
		w.open[node] = map[string]windowEntry{}
	}
	for other, e := range w.open[node] {
		if other == volID || e.size != size || e.digest != digest {
			continue
		}
		if age := time.Since(e.since); age > w.max {
			klog.InfoS("Attach window ended by its timeout: the node refuses rather than guesses if it still cannot tell the drives apart",
				"server", node, "drive", other, "age", age)
			delete(w.open[node], other)
			continue
		}
		now, err := c.contentDigest(ctx, other)
		if cloudsigma.IsNotFound(err) {
			delete(w.open[node], other) // deleted: it holds nothing any more
			continue
		}
		if err != nil {
			return err
		}
		if now != e.digest {
			delete(w.open[node], other) // formatted (or written): distinctive now
			continue
		}
		what := "the same content"
		if digest == params.BlankDigest() {
			what = "nothing (blank)"
		}
		return fmt.Errorf("%w: drive %s waits to attach to server %s: drive %s, attached there %s ago, is %d bytes too and holds %s, "+
			"so a guest without drive serials could not tell the two apart; it attaches once that drive is staged (formatted) or detached, or after %s",
			errIndistinct, volID, node, other, time.Since(e.since).Round(time.Second), size, what, w.max)
	}
	if _, ok := w.open[node][volID]; !ok {
		w.open[node][volID] = windowEntry{size: size, digest: digest, since: time.Now()}
	}
	return nil
}

// leaveWindow closes volID's window on node ("" = every server): detached,
// or its attach failed.
func (c *Service) leaveWindow(node, volID string) {
	w := &c.window
	w.mu.Lock()
	defer w.mu.Unlock()
	for srv, drives := range w.open {
		if node == "" || srv == node {
			delete(drives, volID)
		}
	}
}
