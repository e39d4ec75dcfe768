package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// heads is a Content whose drives hold the given first bytes.
type heads map[string][]byte

func (h heads) ReadDriveRange(_ context.Context, id string, _, n int64) ([]byte, error) {
	b, ok := h[id]
	if !ok {
		return nil, &cloudsigma.Error{StatusCode: http.StatusNotFound, Type: cloudsigma.ErrTypeNotExist, Message: "no such drive"}
	}
	out := make([]byte, n)
	copy(out, b)
	return out, nil
}

func TestAttachWindow(t *testing.T) {
	h := heads{"a": nil, "b": nil, "c": nil, "d": []byte("ext4 of d"), "e": nil}
	c := &Service{content: h, window: window{max: time.Hour}}
	ctx := context.Background()
	enter := func(node, id string, size int64) error {
		digest, err := c.contentDigest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.enterWindow(ctx, node, id, size, digest)
	}
	if err := enter("s1", "a", 1<<30); err != nil {
		t.Fatalf("first blank drive: %v", err)
	}
	if err := enter("s1", "a", 1<<30); err != nil {
		t.Fatalf("the same drive again (an idempotent publish): %v", err)
	}
	err := enter("s1", "b", 1<<30)
	if !errors.Is(err, errIndistinct) || !strings.Contains(err.Error(), "drive a") || !strings.Contains(err.Error(), "blank") {
		t.Fatalf("blank twin: %v, want errIndistinct naming drive a", err)
	}
	if err := enter("s2", "b", 1<<30); err != nil {
		t.Fatalf("blank twin on another server: %v", err)
	}
	if err := enter("s1", "c", 2<<30); err != nil {
		t.Fatalf("blank drive of another size: %v", err)
	}
	if err := enter("s1", "d", 1<<30); err != nil {
		t.Fatalf("distinctive drive of the same size: %v", err)
	}
	h["a"] = []byte("ext4 of a") // the node formatted it
	if err := enter("s1", "e", 1<<30); err != nil {
		t.Fatalf("blank drive once its twin is formatted: %v", err)
	}
	// e is in the window now; its detach ends it.
	c.leaveWindow("s1", "e")
	h["f"] = nil
	if err := enter("s1", "f", 1<<30); err != nil {
		t.Fatalf("blank drive once its twin is detached: %v", err)
	}
	// A deleted twin holds nothing: its window ends.
	h["h"], h["i"] = nil, nil
	if err := enter("s3", "h", 1<<30); err != nil {
		t.Fatal(err)
	}
	delete(h, "h")
	if err := enter("s3", "i", 1<<30); err != nil {
		t.Fatalf("blank drive once its twin is deleted: %v", err)
	}
	// A window ends by its timeout too: the node refuses rather than
	// guesses if it still cannot tell them apart.
	c.window.max = time.Nanosecond
	h["g"] = nil
	time.Sleep(time.Millisecond)
	if err := enter("s1", "g", 1<<30); err != nil {
		t.Fatalf("blank drive after the window's timeout: %v", err)
	}
	if got := params.ContentDigest(make([]byte, params.ContentProbeBytes)); got != params.BlankDigest() {
		t.Fatal("BlankDigest is not the digest of zeros")
	}
}

func TestSerialsOnlyReadsNothing(t *testing.T) {
	c := &Service{serialsOnly: true}
	if d, err := c.contentDigest(context.Background(), "a"); d != "" || err != nil {
		t.Fatalf("contentDigest with SerialsOnly: %q %v", d, err)
	}
}
