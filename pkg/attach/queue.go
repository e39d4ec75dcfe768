// Package attach serializes the read-modify-write of a server's drives list
// and coalesces concurrent attach/detach requests for one server into one
// PUT. CloudSigma attaches a drive by rewriting the whole server definition,
// so two uncoordinated writers lose each other's changes or get 503s; one
// writer per server that batches whatever is waiting fixes both.
package attach

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"k8s.io/klog/v2"
)

// ServerAPI is what the queue needs from the cloud: the server's definition
// to rewrite, and the drives' mounted_on to confirm an attach.
type ServerAPI interface {
	GetServer(ctx context.Context, uuid string) (*cloudsigma.Server, error)
	UpdateServerDrives(ctx context.Context, s *cloudsigma.Server, drives []cloudsigma.ServerDrive) (*cloudsigma.Server, error)
	ListDrives(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Drive, error)
}

// ErrNoFreeChannel means every configured device channel of the server is
// taken.
var ErrNoFreeChannel = errors.New("no free virtio device channel on the server")

// ErrNotConfirmed means the server answered the change but the drive did not
// arrive: a running server may accept a definition change with 200 and
// ignore it (API manual, section 11.5). The caller retries.
var ErrNotConfirmed = errors.New("attach not confirmed")

// Queue coalesces drive list changes per server.
type Queue struct {
	api      ServerAPI
	channels virtio.Channels
	// Retries is how many times a batch is re-read and re-written after a
	// concurrency conflict (503) before its requests fail.
	Retries int
	// Confirm bounds the wait for attached drives to report mounted_on the
	// server, and the pauses between its reads.
	Confirm cloudsigma.WaitOptions

	mu      sync.Mutex
	pending map[string][]*op // server UUID -> requests waiting for the next write
	running map[string]bool  // server UUID -> a writer goroutine is active
}

// NewQueue returns a queue allocating from channels.
func NewQueue(api ServerAPI, channels virtio.Channels) *Queue {
	return &Queue{api: api, channels: channels, Retries: 8,
		Confirm: cloudsigma.WaitOptions{Timeout: 30 * time.Second, MinInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second},
		pending: map[string][]*op{}, running: map[string]bool{}}
}

type op struct {
	ctx    context.Context
	drive  string
	attach bool
	done   chan result
}

type result struct {
	channel string
	err     error
}

// Attach makes sure drive is in the server's drives list as a virtio device
// and returns its dev_channel once the attach is confirmed: the server's
// answer lists the drive at that channel, and the drive reports mounted_on
// the server. A drive already attached keeps its channel.
func (q *Queue) Attach(ctx context.Context, server, drive string) (string, error) {
	r := q.submit(ctx, server, &op{ctx: ctx, drive: drive, attach: true})
	return r.channel, r.err
}

// Detach removes drive from the server's drives list; absent is success.
// The drive may stay mounted for a while afterwards: CloudSigma unplugs
// asynchronously, and waiting for that is the caller's business.
func (q *Queue) Detach(ctx context.Context, server, drive string) error {
	return q.submit(ctx, server, &op{ctx: ctx, drive: drive}).err
}

func (q *Queue) submit(ctx context.Context, server string, o *op) result {
	o.done = make(chan result, 1)
	if q.enqueue(server, o) {
		go q.drain(server)
	}
	select {
	case r := <-o.done:
		return r
	case <-ctx.Done():
		// The change may still be written; a retried request finds it done.
		return result{err: ctx.Err()}
	}
}

// enqueue adds a request and reports whether the server needs a writer.
func (q *Queue) enqueue(server string, o *op) (startWriter bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending[server] = append(q.pending[server], o)
	if q.running[server] {
		return false
	}
	q.running[server] = true
	return true
}

// next takes the server's pending requests; none left ends its writer.
func (q *Queue) next(server string) []*op {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending[server]
	delete(q.pending, server)
	if len(batch) == 0 {
		delete(q.running, server)
	}
	return batch
}

// drain writes batches for one server until nothing is pending.
func (q *Queue) drain(server string) {
	for batch := q.next(server); len(batch) > 0; batch = q.next(server) {
		q.write(server, live(batch))
	}
}

// live drops requests whose callers gave up before the write started.
func live(batch []*op) []*op {
	out := batch[:0]
	for _, o := range batch {
		if o.ctx.Err() != nil {
			o.done <- result{err: o.ctx.Err()}
			continue
		}
		out = append(out, o)
	}
	return out
}

// write applies a batch with one read-modify-write, re-reading on
// concurrency conflicts. If the API rejects a batch of several requests, each
// is tried alone so one bad request cannot fail the others.
func (q *Queue) write(server string, batch []*op) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	var err error
	for attempt := 0; attempt <= q.Retries; attempt++ {
		var results map[*op]result
		results, err = q.apply(ctx, server, batch)
		if err == nil {
			for o, r := range results {
				o.done <- r
			}
			return
		}
		if !cloudsigma.IsConcurrency(err) || ctx.Err() != nil {
			break
		}
		klog.V(3).InfoS("Server update conflicted, re-reading", "server", server, "attempt", attempt+1, "err", err)
		wait := time.Duration(100+rand.IntN(200)) * time.Millisecond << min(attempt, 4)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	if len(batch) > 1 && !cloudsigma.IsConcurrency(err) && ctx.Err() == nil {
		for _, o := range batch {
			q.write(server, []*op{o})
		}
		return
	}
	for _, o := range batch {
		o.done <- result{err: err}
	}
}

// apply reads the server, applies every request of the batch to its drives
// list and writes it back once (or not at all when nothing changes).
func (q *Queue) apply(ctx context.Context, server string, batch []*op) (map[*op]result, error) {
	srv, err := q.api.GetServer(ctx, server)
	if err != nil {
		return nil, err
	}
	drives := append([]cloudsigma.ServerDrive(nil), srv.Drives...)
	used := map[string]bool{}
	data := 0 // drives that are not boot drives: what the attach limit counts
	for _, d := range drives {
		used[virtio.Normalize(d.DevChannel)] = true
		if d.BootOrder == nil {
			data++
		}
	}
	results := map[*op]result{}
	changed := false
	for _, o := range batch {
		idx := indexOf(drives, o.drive)
		switch {
		case o.attach && idx >= 0:
			results[o] = result{channel: virtio.Normalize(drives[idx].DevChannel)}
		case o.attach && data >= q.channels.MaxVolumes():
			// The node advertises MaxVolumes; honouring it here keeps the
			// scheduler's view true even on a server without a boot drive.
			results[o] = result{err: fmt.Errorf("%w: attach limit of %d data drives reached", ErrNoFreeChannel, q.channels.MaxVolumes())}
			continue
		case o.attach:
			ch, ok := q.channels.Free(used)
			if !ok {
				results[o] = result{err: fmt.Errorf("%w (%d channels in use)", ErrNoFreeChannel, len(used))}
				continue
			}
			used[ch] = true
			data++
			drives = append(drives, cloudsigma.ServerDrive{
				DevChannel: ch, Device: "virtio", Drive: cloudsigma.Ref{UUID: o.drive},
			})
			results[o] = result{channel: ch}
			changed = true
		case idx >= 0:
			drives = append(drives[:idx], drives[idx+1:]...)
			results[o] = result{}
			changed = true
		default:
			results[o] = result{}
		}
	}
	if changed {
		written, err := q.api.UpdateServerDrives(ctx, srv, drives)
		if err != nil {
			return nil, err
		}
		srv = written
	}
	q.confirm(ctx, srv, results)
	return results, nil
}

// confirm checks every request of the batch against the cloud's answer: the
// written definition must list an attached drive at its channel (and no
// longer list a detached one), and then an attached drive must report
// mounted_on the server. One filtered read serves the whole
// batch per poll, so confirming costs one call per batch in steady state.
func (q *Queue) confirm(ctx context.Context, srv *cloudsigma.Server, results map[*op]result) {
	waiting := map[string][]*op{} // drive -> its attach requests
	for o, r := range results {
		if r.err != nil {
			continue
		}
		if !o.attach {
			if _, still := srv.HasDrive(o.drive); still {
				results[o] = result{err: fmt.Errorf("%w: server %s answered with drive %s still in its definition; a running server ignores definition changes it cannot unplug",
					ErrNotConfirmed, srv.UUID, o.drive)}
			}
			continue
		}
		if d, ok := srv.HasDrive(o.drive); !ok || virtio.Normalize(d.DevChannel) != r.channel {
			results[o] = result{err: fmt.Errorf("%w: server %s answered without drive %s at channel %s; a running server ignores definition changes it cannot hot-plug",
				ErrNotConfirmed, srv.UUID, o.drive, r.channel)}
			continue
		}
		waiting[o.drive] = append(waiting[o.drive], o)
	}
	if len(waiting) == 0 {
		return
	}
	err := cloudsigma.Poll(ctx, q.Confirm, func(ctx context.Context) (bool, error) {
		ids := make([]string, 0, len(waiting))
		for id := range waiting {
			ids = append(ids, id)
		}
		drives, err := q.api.ListDrives(ctx, cloudsigma.Filter{UUID: ids})
		if err != nil {
			return false, err
		}
		for i := range drives {
			if drives[i].IsMountedOn(srv.UUID) {
				delete(waiting, drives[i].UUID)
			}
		}
		return len(waiting) == 0, nil
	})
	for id, ops := range waiting {
		for _, o := range ops {
			results[o] = result{err: fmt.Errorf("%w: server %s lists drive %s at channel %s, but the drive does not report it mounted there (%v); the server may not have hot-plugged it",
				ErrNotConfirmed, srv.UUID, id, results[o].channel, err)}
		}
	}
}
func indexOf(drives []cloudsigma.ServerDrive, drive string) int {
	for i, d := range drives {
		if d.Drive.UUID == drive {
			return i
		}
	}
	return -1
}

// batchContext lives as long as the longest-lived caller of the batch, so a
// caller giving up does not abort a write that others still wait for.
func batchContext(batch []*op) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, o := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-o.ctx.Done():
			case <-ctx.Done():
			}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	return ctx, cancel
}
