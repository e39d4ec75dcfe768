package cloudsigma_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// An answer beyond MaxResponseBytes is an error that names the limit and the
// flag, never a truncated document decoded as if whole.
func TestResponseSizeIsBounded(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	for i := range 3 {
		e.readyDrive(fmt.Sprintf("big-%d", i), gib)
	}
	small := e.client(func(c *cloudsigma.Config) { c.MaxResponseBytes = 512 })
	_, err := small.ListDrives(ctxT(t), cloudsigma.Filter{})
	if !errors.Is(err, cloudsigma.ErrTooLarge) || !strings.Contains(err.Error(), "--api-max-response-bytes") {
		t.Fatalf("a list answer over 512 bytes: %v, want ErrTooLarge naming the flag", err)
	}
	if _, err := e.c.ListDrives(ctxT(t), cloudsigma.Filter{}); err != nil {
		t.Fatalf("the default bound: %v", err)
	}
}

// A listing longer than MaxListItems stops with an error instead of growing
// without bound; within the bound every page is followed.
func TestListingIsBounded(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	for i := range 5 {
		e.readyDrive(fmt.Sprintf("many-%d", i), gib)
	}
	capped := e.client(func(c *cloudsigma.Config) { c.PageSize, c.MaxListItems = 2, 3 })
	_, err := capped.ListDrives(ctxT(t), cloudsigma.Filter{})
	if !errors.Is(err, cloudsigma.ErrTooLarge) || !strings.Contains(err.Error(), "more than 3 objects") {
		t.Fatalf("listing 5 drives with a bound of 3: %v", err)
	}
	roomy := e.client(func(c *cloudsigma.Config) { c.PageSize, c.MaxListItems = 2, 5 })
	drives, err := roomy.ListDrives(ctxT(t), cloudsigma.Filter{})
	if err != nil || len(drives) != 5 {
		t.Fatalf("listing 5 drives with a bound of 5: %d, %v", len(drives), err)
	}
}
