package attach

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	// server that cannot hot-plug does.
	ignore bool
	meta   map[string]string
	reads  int
}

func (f *fakeServers) GetServer(ctx context.Context, uuid string) (*cloudsigma.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return &cloudsigma.Server{UUID: uuid, Drives: append([]cloudsigma.ServerDrive(nil), f.drives...), Meta: maps.Clone(f.meta)}, nil
}

func (f *fakeServers) UpdateServer(ctx context.Context, s *cloudsigma.Server, drives []cloudsigma.ServerDrive, meta map[string]string) (*cloudsigma.Server, error) {
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
	f.drives, f.meta = drives, maps.Clone(meta)
	return &cloudsigma.Server{UUID: s.UUID, Drives: append([]cloudsigma.ServerDrive(nil), drives...), Meta: maps.Clone(meta)}, nil
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
			a, err := q.Attach(context.Background(), "srv", fmt.Sprintf("d%d", i), "rec")
			if err != nil {
				t.Errorf("attach %d: %v", i, err)
			}
			chans[i] = a.Channel
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
	a, err := q.Attach(context.Background(), "srv", "d1", "rec")
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.Attach(context.Background(), "srv", "d1", "rec")
	if err != nil || a != b || f.puts != 1 {
		t.Fatalf("second attach: %q %v (first %q), %d PUTs", b, err, a, f.puts)
	}
	if err := q.Detach(context.Background(), "srv", "other", nil); err != nil || f.puts != 1 {
		t.Fatalf("detach of an absent drive: %v, %d PUTs", err, f.puts)
	}
	if err := q.Detach(context.Background(), "srv", "d1", nil); err != nil || len(f.drives) != 0 {
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
			_, err := q.Attach(context.Background(), "srv", d, "")
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
	if a, err := q.Attach(context.Background(), "srv", "a", ""); err != nil || a.Channel != "0:1" {
		t.Fatalf("first data attach: %v, %v", a, err)
	}
	if _, err := q.Attach(context.Background(), "srv", "b", ""); !errors.Is(err, ErrNoFreeChannel) {
		t.Fatalf("attach with every channel taken: %v", err)
	}
}

// Without a boot drive the limit the node advertises (capacity-1 data
// drives) still holds, though a channel is free.
func TestAttachLimitWithoutBootDrive(t *testing.T) {
	f := &fakeServers{}
	q := NewQueue(f, virtio.Channels{Controllers: 1, Units: 3})
	for _, d := range []string{"a", "b"} {
		if _, err := q.Attach(context.Background(), "srv", d, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Attach(context.Background(), "srv", "c", ""); !errors.Is(err, ErrNoFreeChannel) {
		t.Fatalf("attach beyond MaxVolumes (2): %v", err)
	}
	if len(f.drives) != 2 {
		t.Fatalf("server holds %d drives, want 2", len(f.drives))
	}
}

// A running server that answers 200 and ignores the change: the attach is
// not reported as done, and the error names the server, the drive and the
// reason.
func TestUnconfirmedAttachFails(t *testing.T) {
	f := &fakeServers{ignore: true}
	q := NewQueue(f, virtio.DefaultChannels)
	a, err := q.Attach(context.Background(), "srv", "d1", "rec")
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Attach = %v, %v; want ErrNotConfirmed", a, err)
	}
	for _, s := range []string{"srv", "d1", "answered without drive"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// The publish record travels in the attach's PUT: one read and one write per
// attach, the record found again by a repeated attach, dropped by the detach,
// and a guarded detach refused without a record its guard accepts.
func TestPublishRecordsRideTheAttachWrite(t *testing.T) {
	f := &fakeServers{meta: map[string]string{"other": "kept", RecordKeyPrefix + "0:9": "gone x"}}
	q := NewQueue(f, virtio.DefaultChannels)
	a, err := q.Attach(context.Background(), "srv", "d1", "mount/rw")
	if err != nil || a.Record != "mount/rw" || f.reads != 1 || f.puts != 1 {
		t.Fatalf("attach: %v %v, %d reads %d PUTs; want the record, 1 read, 1 PUT", a, err, f.reads, f.puts)
	}
	if f.meta["other"] != "kept" || f.meta[RecordKeyPrefix+a.Channel] != "d1 mount/rw" || len(f.meta) != 2 {
		t.Fatalf("server meta %v: want the foreign key kept, the record written, the stale record dropped", f.meta)
	}
	again, err := q.Attach(context.Background(), "srv", "d1", "block/rw")
	if err != nil || again.Record != "mount/rw" || f.puts != 1 {
		t.Fatalf("repeated attach: %v %v, %d PUTs; want the first record back and no write", again, err, f.puts)
	}
	refuse := func(rec string) bool { return rec == "someone else" }
	if err := q.Detach(context.Background(), "srv", "d1", refuse); !errors.Is(err, ErrNotRecorded) || len(f.drives) != 1 {
		t.Fatalf("guarded detach: %v, drives %v; want ErrNotRecorded and the drive kept", err, f.drives)
	}
	if err := q.Detach(context.Background(), "srv", "d1", func(rec string) bool { return rec == "mount/rw" }); err != nil || len(f.drives) != 0 || len(f.meta) != 1 {
		t.Fatalf("detach: %v, drives %v meta %v; want both gone", err, f.drives, f.meta)
	}
}
