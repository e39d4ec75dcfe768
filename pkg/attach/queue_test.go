package attach

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// fakeServers is a unit-test double: one server whose drives list can be
// read and written, with a PUT that takes time and optional conflicts.
type fakeServers struct {
	mu        sync.Mutex
	drives    []cloudsigma.ServerDrive
	puts      int
	conflicts int // fail this many PUTs with a concurrency error
	reject    string
	// ignore answers a PUT with 200 and the old definition, as a running
	// server that cannot hot-plug does; unplugged lists drives in the
	// definition that never report mounted_on.
	ignore    bool
	unplugged bool
	lists     int
}

func (f *fakeServers) ListDrives(ctx context.Context, flt cloudsigma.Filter) ([]cloudsigma.Drive, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var out []cloudsigma.Drive
	for _, id := range flt.UUID {
		d := cloudsigma.Drive{UUID: id}
		for _, sd := range f.drives {
			if sd.Drive.UUID == id && !f.unplugged {
				d.MountedOn = []cloudsigma.Ref{{UUID: "srv"}}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func (f *fakeServers) GetServer(ctx context.Context, uuid string) (*cloudsigma.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &cloudsigma.Server{UUID: uuid, Drives: append([]cloudsigma.ServerDrive(nil), f.drives...)}, nil
}

func (f *fakeServers) UpdateServerDrives(ctx context.Context, s *cloudsigma.Server, drives []cloudsigma.ServerDrive) (*cloudsigma.Server, error) {
	time.Sleep(5 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if f.conflicts > 0 {
		f.conflicts--
		return nil, &cloudsigma.Error{StatusCode: http.StatusServiceUnavailable, Type: cloudsigma.ErrTypeConcurrency}
	}
	for _, d := range drives {
		if d.Drive.UUID == f.reject {
			return nil, &cloudsigma.Error{StatusCode: http.StatusBadRequest, Type: cloudsigma.ErrTypeValidation}
		}
	}
	if f.ignore {
		return &cloudsigma.Server{UUID: s.UUID, Drives: append([]cloudsigma.ServerDrive(nil), f.drives...)}, nil
	}
	f.drives = drives
	return &cloudsigma.Server{UUID: s.UUID, Drives: append([]cloudsigma.ServerDrive(nil), drives...)}, nil
}

func TestConcurrentAttachesCoalesceAndGetDistinctChannels(t *testing.T) {
	f := &fakeServers{drives: []cloudsigma.ServerDrive{{DevChannel: "0:0", Device: "virtio", Drive: cloudsigma.Ref{UUID: "boot"}}}}
	q := NewQueue(f, virtio.Channels{Controllers: 3, Units: 6})
	var wg sync.WaitGroup
	chans := make([]string, 16)
	for i := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := q.Attach(context.Background(), "srv", fmt.Sprintf("d%d", i))
			if err != nil {
				t.Errorf("attach %d: %v", i, err)
			}
			chans[i] = ch
		}()
	}
	wg.Wait()
	seen := map[string]bool{"0:0": true}
	for _, ch := range chans {
		if seen[ch] {
			t.Fatalf("channel %s handed out twice: %v", ch, chans)
		}
		seen[ch] = true
	}
	if f.puts >= 16 {
		t.Fatalf("%d PUTs for 16 attaches", f.puts)
	}
	if len(f.drives) != 17 {
		t.Fatalf("server has %d drives, want 17", len(f.drives))
	}
}

func TestAttachIsIdempotentAndDetachOfAbsentDriveIsNoop(t *testing.T) {
	f := &fakeServers{}
	q := NewQueue(f, virtio.DefaultChannels)
	a, err := q.Attach(context.Background(), "srv", "d1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.Attach(context.Background(), "srv", "d1")
	if err != nil || a != b || f.puts != 1 {
		t.Fatalf("second attach: %q %v (first %q), %d PUTs", b, err, a, f.puts)
	}
	if err := q.Detach(context.Background(), "srv", "other"); err != nil || f.puts != 1 {
		t.Fatalf("detach of an absent drive: %v, %d PUTs", err, f.puts)
	}
	if err := q.Detach(context.Background(), "srv", "d1"); err != nil || len(f.drives) != 0 {
		t.Fatalf("detach: %v, drives %v", err, f.drives)
	}
}

func TestConflictsAreRetriedAndBadRequestsIsolated(t *testing.T) {
	f := &fakeServers{conflicts: 2, reject: "bad"}
	q := NewQueue(f, virtio.DefaultChannels)
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for _, d := range []string{"good1", "bad", "good2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := q.Attach(context.Background(), "srv", d)
			mu.Lock()
			errs[d] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	if errs["good1"] != nil || errs["good2"] != nil {
		t.Fatalf("good attaches failed: %v", errs)
	}
	if !cloudsigma.IsValidation(errs["bad"]) {
		t.Fatalf("bad attach: %v, want the validation error", errs["bad"])
	}
}

// With a boot drive on 0:0, two channels hold one data drive: the next
// attach finds no free channel.
func TestNoFreeChannel(t *testing.T) {
	boot := 1
	f := &fakeServers{drives: []cloudsigma.ServerDrive{{Drive: cloudsigma.Ref{UUID: "boot"}, DevChannel: "0:0", Device: "virtio", BootOrder: &boot}}}
	q := NewQueue(f, virtio.Channels{Controllers: 1, Units: 2})
	if ch, err := q.Attach(context.Background(), "srv", "a"); err != nil || ch != "0:1" {
		t.Fatalf("first data attach: %q, %v", ch, err)
	}
	if _, err := q.Attach(context.Background(), "srv", "b"); !errors.Is(err, ErrNoFreeChannel) {
		t.Fatalf("attach with every channel taken: %v", err)
	}
}

// Without a boot drive the limit the node advertises (capacity-1 data
// drives) still holds, though a channel is free.
func TestAttachLimitWithoutBootDrive(t *testing.T) {
	f := &fakeServers{}
	q := NewQueue(f, virtio.Channels{Controllers: 1, Units: 3})
	for _, d := range []string{"a", "b"} {
		if _, err := q.Attach(context.Background(), "srv", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Attach(context.Background(), "srv", "c"); !errors.Is(err, ErrNoFreeChannel) {
		t.Fatalf("attach beyond MaxVolumes (2): %v", err)
	}
	if len(f.drives) != 2 {
		t.Fatalf("server holds %d drives, want 2", len(f.drives))
	}
}

// A running server that answers 200 and ignores the change, and one that
// lists the drive but never plugs it: neither attach is reported as done,
// and the error names the server, the drive and the reason.
func TestUnconfirmedAttachFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fakeServers
		says string
	}{
		{"ignored", &fakeServers{ignore: true}, "answered without drive"},
		{"never mounted", &fakeServers{unplugged: true}, "does not report it mounted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(tc.f, virtio.DefaultChannels)
			q.Confirm = cloudsigma.WaitOptions{Timeout: 200 * time.Millisecond, MinInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
			ch, err := q.Attach(context.Background(), "srv", "d1")
			if !errors.Is(err, ErrNotConfirmed) {
				t.Fatalf("Attach = %q, %v; want ErrNotConfirmed", ch, err)
			}
			for _, s := range []string{"srv", "d1", tc.says} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// Confirming a batch costs one drives read per poll, not one per drive.
func TestConfirmationReadsOncePerBatch(t *testing.T) {
	f := &fakeServers{}
	q := NewQueue(f, virtio.DefaultChannels)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Attach(context.Background(), "srv", fmt.Sprintf("d%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists != f.puts {
		t.Fatalf("%d drive reads for %d server writes; want one read per batch", f.lists, f.puts)
	}
}
