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
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"k8s.io/klog/v2"
)

// ServerAPI is what the queue needs from the cloud: the server's definition
// to rewrite (drives list and meta in one PUT).
type ServerAPI interface {
	GetServer(ctx context.Context, uuid string) (*cloudsigma.Server, error)
	UpdateServer(ctx context.Context, s *cloudsigma.Server, drives []cloudsigma.ServerDrive, meta map[string]string) (*cloudsigma.Server, error)
}

// ErrNoFreeChannel means every configured device channel of the server is
// taken.
var ErrNoFreeChannel = errors.New("no free virtio device channel on the server")

// ErrNotConfirmed means the server answered the change but the drive did not
// arrive: a running server may accept a definition change with 200 and
// ignore it (API manual, section 11.5). The caller retries.
var ErrNotConfirmed = errors.New("attach not confirmed")

// ErrNotRecorded means a guarded detach found the drive on the server
// without a record its guard accepts; nothing was written.
var ErrNotRecorded = errors.New("no publish record for the drive on the server")

// Queue coalesces drive list changes per server.
type Queue struct {
	api      ServerAPI
	channels virtio.Channels
	// Retries is how many times a batch is re-read and re-written after a
	// concurrency conflict (503) before its requests fail.
	Retries int

	mu      sync.Mutex
	pending map[string][]*op // server UUID -> requests waiting for the next write
	running map[string]bool  // server UUID -> a writer goroutine is active
}

// NewQueue returns a queue allocating from channels.
func NewQueue(api ServerAPI, channels virtio.Channels) *Queue {
	return &Queue{api: api, channels: channels, Retries: 8,
		pending: map[string][]*op{}, running: map[string]bool{}}
}

type op struct {
	ctx    context.Context
	drive  string
	attach bool
	record string            // attach: the publish record to write with it
	guard  func(string) bool // detach: nil, or which records allow it
	done   chan result
}

type result struct {
	channel string
	record  string
	err     error
}

// Attached is where an attach put the drive, and the server's publish
// record for it: the one written with this attach, or for a drive that was
// already there, the one found ("" when none was written).
type Attached struct {
	Channel string
	Record  string
}

// Attach makes sure drive is in the server's drives list as a virtio device,
// with record as its publish record in the server's meta (written in the
// same PUT), and returns its dev_channel once the server's answer lists the
// drive at that channel. A drive already attached keeps its channel and its
// record, which the caller compares with what it asks.
func (q *Queue) Attach(ctx context.Context, server, drive, record string) (Attached, error) {
	r := q.submit(ctx, server, &op{ctx: ctx, drive: drive, attach: true, record: record})
	return Attached{Channel: r.channel, Record: r.record}, r.err
}

// Detach removes drive from the server's drives list, and its publish
// record with it; absent is success. With a guard, a drive on the server
// whose record the guard refuses stays, and the answer is ErrNotRecorded.
// The drive may stay mounted for a while afterwards: CloudSigma unplugs
// asynchronously, and waiting for that is the caller's business.
func (q *Queue) Detach(ctx context.Context, server, drive string, guard func(record string) bool) error {
	return q.submit(ctx, server, &op{ctx: ctx, drive: drive, guard: guard}).err
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

// more reports whether requests wait for the server; none ends its writer.
func (q *Queue) more(server string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending[server]) == 0 {
		delete(q.running, server)
		return false
	}
	return true
}

// next takes the server's pending requests.
func (q *Queue) next(server string) []*op {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending[server]
	delete(q.pending, server)
	return batch
}

// readTimeout bounds a server read made before its batch is taken.
const readTimeout = 30 * time.Second

// drain writes batches for one server until nothing is pending. The server
// is read before the batch is taken: requests that arrive while the read is
// on the wire join this write instead of waiting for the next, so requests
// that come together share one read and one write.
func (q *Queue) drain(server string) {
	for q.more(server) {
		// The batch's one read: a read-modify-write of the whole definition
		// needs the server as it is now.
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		srv, err := q.api.GetServer(ctx, server)
		cancel()
		q.write(server, live(q.next(server)), srv, err)
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
// srv is the server as read for the first attempt (nil: read it), readErr
// that read's failure.
func (q *Queue) write(server string, batch []*op, srv *cloudsigma.Server, readErr error) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	var err error
	for attempt := 0; attempt <= q.Retries; attempt++ {
		var results map[*op]result
		if attempt == 0 && readErr != nil {
			err = readErr
		} else {
			results, err = q.apply(ctx, server, batch, srv)
		}
		srv = nil // a retry reads again
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
	if len(batch) > 1 && !cloudsigma.IsConcurrency(err) && ctx.Err() == nil && err != readErr {
		for _, o := range batch {
			q.write(server, []*op{o}, nil, nil)
		}
		return
	}
	for _, o := range batch {
		o.done <- result{err: err}
	}
}

// apply reads the server, applies every request of the batch to its drives
// list and publish records and writes both back in one PUT (or not at all
// when nothing changes): one read and one write per batch.
func (q *Queue) apply(ctx context.Context, server string, batch []*op, srv *cloudsigma.Server) (map[*op]result, error) {
	if srv == nil {
		var err error
		if srv, err = q.api.GetServer(ctx, server); err != nil {
			return nil, err
		}
	}
	drives := append([]cloudsigma.ServerDrive(nil), srv.Drives...)
	meta := maps.Clone(map[string]string(srv.Meta))
	if meta == nil {
		meta = map[string]string{}
	}
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
			ch := virtio.Normalize(drives[idx].DevChannel)
			results[o] = result{channel: ch, record: recordOf(meta, ch, o.drive)}
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
			if o.record != "" {
				meta[RecordKeyPrefix+ch] = o.drive + " " + o.record
			}
			results[o] = result{channel: ch, record: o.record}
			changed = true
		case idx >= 0 && o.guard != nil && !o.guard(recordOf(meta, virtio.Normalize(drives[idx].DevChannel), o.drive)):
			results[o] = result{err: fmt.Errorf("%w: drive %s on server %s", ErrNotRecorded, o.drive, server)}
		case idx >= 0:
			drives = append(drives[:idx], drives[idx+1:]...)
			results[o] = result{}
			changed = true
		default:
			results[o] = result{}
		}
	}
	if changed {
		// The batch's one write: the drives list and the publish records
		// together; its answer is what confirm checks.
		written, err := q.api.UpdateServer(ctx, srv, drives, pruneRecords(meta, drives))
		if err != nil {
			return nil, err
		}
		srv = written
	}
	confirm(srv, results)
	return results, nil
}

// RecordKeyPrefix starts the server meta keys of publish records, one per
// device channel ("csi_publish_0:3"; meta keys are at most 32 characters).
// The value is the drive's UUID, a space, and the caller's record. Written
// in the PUT that attaches the drive and dropped in the one that detaches
// it, a record costs no call of its own.
const RecordKeyPrefix = "csi_publish_"

// recordOf is the record for drive at channel ch, "" when the key is
// missing or names another drive (left by a change made outside the queue).
func recordOf(meta map[string]string, ch, drive string) string {
	id, rec, _ := strings.Cut(meta[RecordKeyPrefix+ch], " ")
	if id != drive {
		return ""
	}
	return rec
}

// pruneRecords drops the records whose channel no longer holds their drive,
// so the meta describes the drives list it is written with.
func pruneRecords(meta map[string]string, drives []cloudsigma.ServerDrive) map[string]string {
	for k, v := range meta {
		ch, ok := strings.CutPrefix(k, RecordKeyPrefix)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(v, " ")
		if !slices.ContainsFunc(drives, func(d cloudsigma.ServerDrive) bool {
			return d.Drive.UUID == id && virtio.Normalize(d.DevChannel) == ch
		}) {
			delete(meta, k)
		}
	}
	return meta
}

// confirm checks every request of the batch against the cloud's answer to
// the write (or the read, when nothing was written): an attached drive must
// be listed at its channel and a detached one no longer listed. A running
// server that cannot take the change answers 200 with its old definition
// (manual 11.5), which this check catches without another call; the node
// then proves the device by its serial before using it.
func confirm(srv *cloudsigma.Server, results map[*op]result) {
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
