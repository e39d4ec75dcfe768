package cloudsigma_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// Reads asked for while one is on the wire share the next list call; a
// drive the list leaves out is NotFound.
func TestDriveReadsShareListCalls(t *testing.T) {
	var calls atomic.Int32
	list := func(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Drive, error) {
		calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		var out []cloudsigma.Drive
		for _, id := range f.UUID {
			if id != "gone" {
				out = append(out, cloudsigma.Drive{UUID: id, Status: "unmounted"})
			}
		}
		return out, nil
	}
	r := cloudsigma.NewDriveReads(list)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("d%d", i)
			d, err := r.Get(context.Background(), id)
			if err != nil || d.UUID != id {
				t.Errorf("Get(%s) = %v, %v", id, d, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n > 3 {
		t.Errorf("50 concurrent reads made %d list calls, want at most 3", n)
	}
	if _, err := r.Get(context.Background(), "gone"); !cloudsigma.IsNotFound(err) {
		t.Errorf("a drive missing from the list: %v, want NotFound", err)
	}
}

// Lookups by name share list calls too, and each gets only its own drives.
func TestDriveReadsNamedShareListCalls(t *testing.T) {
	var calls atomic.Int32
	list := func(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Drive, error) {
		calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		var out []cloudsigma.Drive
		for _, n := range f.Name {
			if n != "none" {
				out = append(out, cloudsigma.Drive{UUID: "u-" + n, Name: n})
			}
		}
		return out, nil
	}
	r := cloudsigma.NewDriveReads(list)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", i)
			got, err := r.Named(context.Background(), name)
			if err != nil || len(got) != 1 || got[0].Name != name {
				t.Errorf("Named(%s) = %v, %v", name, got, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n > 3 {
		t.Errorf("30 concurrent lookups made %d list calls, want at most 3", n)
	}
	if got, err := r.Named(context.Background(), "none"); err != nil || len(got) != 0 {
		t.Errorf("Named(none) = %v, %v; want nothing", got, err)
	}
}
