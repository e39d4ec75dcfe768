package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// qmp is a client of the QEMU Machine Protocol: JSON objects over a unix
// socket. Commands carry an id and may overlap; events go to whoever
// subscribed to them when they arrive.
type qmp struct {
	w   io.Writer
	wmu sync.Mutex

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan qmpReply
	subs    map[*qmpSub]struct{}
	err     error // set once the connection is gone
	done    chan struct{}
}

// Event is one QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
}

// QMPError is an error QEMU answered a command with.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return e.Class + ": " + e.Desc }

type qmpSub struct {
	match func(Event) bool
	ch    chan Event
}

// qmpMessage is anything QEMU sends: a greeting, a reply or an event.
type qmpMessage struct {
	Greeting json.RawMessage `json:"QMP"`
	ID       *int64          `json:"id"`
	Return   json.RawMessage `json:"return"`
	Error    *QMPError       `json:"error"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
}

// errQMPClosed: the connection to QEMU is gone (QEMU exited).
var errQMPClosed = errors.New("qmp: connection closed")

// newQMP reads the greeting from rw, negotiates capabilities and returns a
// client whose reader runs until rw fails.
func newQMP(ctx context.Context, rw io.ReadWriter) (*qmp, error) {
	q := &qmp{w: rw, pending: map[int64]chan qmpReply{}, subs: map[*qmpSub]struct{}{}, done: make(chan struct{})}
	dec := json.NewDecoder(bufio.NewReader(rw))
	var greeting qmpMessage
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if greeting.Greeting == nil {
		return nil, errors.New("qmp: the first message is not a greeting")
	}
	go q.read(dec)
	if _, err := q.call(ctx, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *qmp) read(dec *json.Decoder) {
	for {
		var m qmpMessage
		if err := dec.Decode(&m); err != nil {
			q.fail(err)
			return
		}
		switch {
		case m.Event != "":
			q.publish(Event{Name: m.Event, Data: m.Data})
		case m.ID != nil:
			q.deliver(*m.ID, qmpReply{Return: m.Return, Error: m.Error})
		}
	}
}

func (q *qmp) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return
	}
	q.err = fmt.Errorf("%w (%v)", errQMPClosed, err)
	for id, ch := range q.pending {
		close(ch)
		delete(q.pending, id)
	}
	close(q.done)
}

func (q *qmp) deliver(id int64, r qmpReply) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ch, ok := q.pending[id]; ok {
		ch <- r
		delete(q.pending, id)
	}
}

func (q *qmp) publish(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s := range q.subs {
		if s.match(ev) {
			select {
			case s.ch <- ev:
			default: // a subscriber that fell behind loses events, never blocks QMP
			}
		}
	}
}

// subscribe delivers the events match accepts until cancel is called.
// Subscribe before sending the command whose event you wait for.
func (q *qmp) subscribe(match func(Event) bool) (<-chan Event, func()) {
	s := &qmpSub{match: match, ch: make(chan Event, 256)}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.subs[s] = struct{}{}
	return s.ch, func() { q.unsubscribe(s) }
}

func (q *qmp) unsubscribe(s *qmpSub) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.subs, s)
}

// register makes room for the reply to a new command.
func (q *qmp) register() (int64, chan qmpReply, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0, nil, q.err
	}
	q.nextID++
	ch := make(chan qmpReply, 1)
	q.pending[q.nextID] = ch
	return q.nextID, ch, nil
}

func (q *qmp) forget(id int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, id)
}

func (q *qmp) closedErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	return errQMPClosed
}

// call runs one command and returns its "return" value.
func (q *qmp) call(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	id, ch, err := q.register()
	if err != nil {
		return nil, err
	}
	msg := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		q.forget(id)
		return nil, err
	}
	if err := q.write(b); err != nil {
		q.forget(id)
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("qmp %s: %w", cmd, q.closedErr())
		}
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, r.Error)
		}
		return r.Return, nil
	case <-ctx.Done():
		q.forget(id)
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

func (q *qmp) write(b []byte) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	_, err := q.w.Write(append(b, '\n'))
	return err
}

// deletedDevice is the QOM id a DEVICE_DELETED event names ("" for other
// events, and for the one QEMU sends, without an id, for a virtio backend).
func deletedDevice(ev Event) string {
	if ev.Name != "DEVICE_DELETED" {
		return ""
	}
	var d struct {
		Device string `json:"device"`
	}
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	return d.Device
}
