package cloudsigma

import (
	"context"
	"net/http"
	"slices"
	"sync"
)

// DriveReads shares drive reads among concurrent callers: a read asked for
// while another is on the wire joins the next one, and that one lists every
// drive asked for meanwhile with one filtered call (/drives/detail/?uuid=a,b,c,
// or ?name=a,b,c for lookups by name). A hundred drives waited on together
// cost a handful of list calls per poll interval instead of a hundred GETs,
// and a lone caller costs one call, as GetDrive does.
type DriveReads struct {
	byUUID, byName batcher
}

// MaxBatch bounds the values of one list call: one page at the default page
// size, and a URL well within what servers accept.
const MaxBatch = 100

// NewDriveReads reads through list (Client.ListDrives).
func NewDriveReads(list func(ctx context.Context, f Filter) ([]Drive, error)) *DriveReads {
	return &DriveReads{
		byUUID: batcher{list: list, filter: func(v []string) Filter { return Filter{UUID: v} }, key: func(d *Drive) string { return d.UUID }},
		byName: batcher{list: list, filter: func(v []string) Filter { return Filter{Name: v} }, key: func(d *Drive) string { return d.Name }},
	}
}

// Get reads one drive, in a list call shared with concurrent reads. A drive
// the list does not return is a 404, as GetDrive would answer.
func (r *DriveReads) Get(ctx context.Context, uuid string) (*Drive, error) {
	found, err := r.byUUID.get(ctx, uuid)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, &Error{StatusCode: http.StatusNotFound, Type: ErrTypeNotExist, Message: "drive " + uuid + " is not in the list"}
	}
	return &found[0], nil
}

// Named lists the drives named exactly name, in a list call shared with
// concurrent lookups.
func (r *DriveReads) Named(ctx context.Context, name string) ([]Drive, error) {
	if checkFilterValue("name", name) != nil {
		// Alone, so the refusal of this name fails no other lookup.
		return r.byName.list(ctx, Filter{Name: []string{name}})
	}
	return r.byName.get(ctx, name)
}

// batcher gathers the values asked for while a list call is on the wire
// into the next one.
type batcher struct {
	list   func(ctx context.Context, f Filter) ([]Drive, error)
	filter func(values []string) Filter
	key    func(*Drive) string

	mu       sync.Mutex
	next     *batch // gathering while one is on the wire
	inFlight bool
}

type batch struct {
	values map[string]bool
	ctxs   []context.Context
	done   chan struct{}
	found  map[string][]Drive
	err    error
}

func (b *batcher) get(ctx context.Context, value string) ([]Drive, error) {
	b.mu.Lock()
	cur := b.next
	if cur == nil {
		cur = &batch{values: map[string]bool{}, done: make(chan struct{})}
		b.next = cur
	}
	cur.values[value] = true
	cur.ctxs = append(cur.ctxs, ctx)
	if !b.inFlight {
		b.inFlight = true
		b.next = nil
		go b.run(cur)
	}
	b.mu.Unlock()

	select {
	case <-cur.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cur.err != nil {
		return nil, cur.err
	}
	return slices.Clone(cur.found[value]), nil
}

// run lists one batch, then the batch gathered meanwhile, if any.
func (b *batcher) run(cur *batch) {
	for cur != nil {
		ctx, cancel := anyContext(cur.ctxs)
		values := make([]string, 0, len(cur.values))
		for v := range cur.values {
			values = append(values, v)
		}
		cur.found = map[string][]Drive{}
		for chunk := range slices.Chunk(values, MaxBatch) {
			drives, err := b.list(ctx, b.filter(chunk))
			if err != nil {
				cur.err = err
				break
			}
			for _, d := range drives {
				cur.found[b.key(&d)] = append(cur.found[b.key(&d)], d)
			}
		}
		cancel()
		close(cur.done)

		b.mu.Lock()
		cur, b.next = b.next, nil
		if cur == nil {
			b.inFlight = false
		}
		b.mu.Unlock()
	}
}

// anyContext lives while any of ctxs does: one caller giving up does not
// fail the read for the others.
func anyContext(ctxs []context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range ctxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	return ctx, cancel
}
