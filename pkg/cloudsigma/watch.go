package cloudsigma

import (
	"context"
	"net/http"
	"slices"
	"sync"
)

// DriveReads shares drive reads among concurrent waiters: a read asked for
// while another is on the wire joins the next one, and that one lists every
// drive asked for meanwhile with one filtered call
// (/drives/detail/?uuid=a,b,c). A hundred drives waited on together cost a
// handful of list calls per poll interval instead of a hundred GETs, and a
// lone waiter costs what GetDrive does.
type DriveReads struct {
	list func(ctx context.Context, f Filter) ([]Drive, error)

	mu       sync.Mutex
	next     *driveBatch // gathering while one is on the wire
	inFlight bool
}

// MaxBatch bounds the UUIDs of one list call: one page at the default page
// size, and a URL well within what servers accept.
const MaxBatch = 100

type driveBatch struct {
	ids   map[string]bool
	ctxs  []context.Context
	done  chan struct{}
	found map[string]*Drive
	err   error
}

// NewDriveReads reads through list (Client.ListDrives).
func NewDriveReads(list func(ctx context.Context, f Filter) ([]Drive, error)) *DriveReads {
	return &DriveReads{list: list}
}

// Get reads one drive, in a list call shared with concurrent Gets. A drive
// the list does not return is a 404, as GetDrive would answer.
func (r *DriveReads) Get(ctx context.Context, uuid string) (*Drive, error) {
	r.mu.Lock()
	b := r.next
	if b == nil {
		b = &driveBatch{ids: map[string]bool{}, done: make(chan struct{})}
		r.next = b
	}
	b.ids[uuid] = true
	b.ctxs = append(b.ctxs, ctx)
	if !r.inFlight {
		r.inFlight = true
		r.next = nil
		go r.run(b)
	}
	r.mu.Unlock()

	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	if d, ok := b.found[uuid]; ok {
		out := *d
		return &out, nil
	}
	return nil, &Error{StatusCode: http.StatusNotFound, Type: ErrTypeNotExist, Message: "drive " + uuid + " is not in the list"}
}

// run lists one batch, then starts the batch gathered meanwhile, if any.
func (r *DriveReads) run(b *driveBatch) {
	ctx, cancel := anyContext(b.ctxs)
	ids := make([]string, 0, len(b.ids))
	for id := range b.ids {
		ids = append(ids, id)
	}
	b.found = map[string]*Drive{}
	for chunk := range slices.Chunk(ids, MaxBatch) {
		drives, err := r.list(ctx, Filter{UUID: chunk})
		if err != nil {
			b.err = err
			break
		}
		for i := range drives {
			b.found[drives[i].UUID] = &drives[i]
		}
	}
	cancel()
	close(b.done)

	r.mu.Lock()
	next := r.next
	r.next = nil
	if next == nil {
		r.inFlight = false
	}
	r.mu.Unlock()
	if next != nil {
		r.run(next)
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
