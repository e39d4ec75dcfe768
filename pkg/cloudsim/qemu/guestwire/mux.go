// Package guestwire is what the simulator's QEMU guest (package qemu, on
// the host) and the agent inside the guest (hack/guest-agent) agree on: one
// virtio-serial port carries many byte streams, each a connection to the
// guest's CSI socket or one command run in the guest.
//
// Why a multiplexer: a virtio-serial port is a single byte stream with no
// notion of connections, while a CSI client (csi-sanity, kubelet) opens and
// closes gRPC connections as it likes. Each host connection becomes one
// stream, and the agent dials the node plugin's unix socket once per
// stream, so a connection on the host is exactly one connection to the
// driver in the guest, and one that ends never leaves the others out of
// step. The guest reaches nothing through the port but what the host opens.
//
// It is a leaf: the standard library only, so the agent stays small.
package guestwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PortName is the name of the virtio-serial port (virtserialport name=) the
// agent serves; the guest lists it in /sys/class/virtio-ports/*/name.
const PortName = "org.cloudsigma-csi.guest"

// CSISocket is where the node plugin in the guest serves CSI.
const CSISocket = "/run/csi/csi.sock"

// Stream kinds, the payload of an open frame.
const (
	KindCSI  = "csi"  // a connection to CSISocket
	KindExec = "exec" // one Request in, one Reply out
)

// Frame layout: magic, type, stream id, payload length, payload. The magic
// lets a reader find the next frame after bytes left over from an earlier
// session (a guest's write blocks while no host is connected and completes
// after the next one connects).
var magic = [4]byte{'C', 'S', 'G', 'W'}

const (
	frameOpen  byte = 1 // host -> guest: payload is the kind
	frameData  byte = 2
	frameClose byte = 3 // either way: the stream is over
	frameReset byte = 4 // host -> guest: a new session, every stream is over

	headerLen = 4 + 1 + 4 + 4
	// MaxPayload bounds one frame; longer writes are split.
	MaxPayload = 32 << 10
)

// ErrClosed is returned by a closed stream or mux.
var ErrClosed = errors.New("guestwire: closed")

// Mux runs streams over one byte stream. The host side opens streams; the
// guest side accepts them.
type Mux struct {
	w      io.Writer
	wmu    sync.Mutex // one frame at a time
	accept func(kind string, s *Stream)

	mu      sync.Mutex
	streams map[uint32]*Stream
	next    uint32
	closed  bool
}

// NewMux makes a mux writing frames to w. accept, on the guest side, gets
// every stream the host opens (and owns it); the host side passes nil. The
// host side starts a session with Reset; first is the first stream id it
// uses (a random one keeps stale frames of an earlier session apart).
func NewMux(w io.Writer, accept func(kind string, s *Stream), first uint32) *Mux {
	return &Mux{w: w, accept: accept, streams: map[uint32]*Stream{}, next: first}
}

// Reset tells the guest that a new session begins: every stream it holds
// is over.
func (m *Mux) Reset() error { return m.writeFrame(frameReset, 0, nil) }

// Open starts a stream of the given kind (host side).
func (m *Mux) Open(kind string) (*Stream, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.next++
	s := newStream(m, m.next)
	m.streams[s.id] = s
	m.mu.Unlock()
	if err := m.writeFrame(frameOpen, s.id, []byte(kind)); err != nil {
		s.closeLocal()
		return nil, err
	}
	return s, nil
}

// Serve reads frames from r until it fails; every stream then ends. It
// returns the read error (io.EOF at a clean end).
func (m *Mux) Serve(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	defer m.closeAll()
	for {
		typ, id, payload, err := readFrame(br)
		if err != nil {
			return err
		}
		m.dispatch(typ, id, payload)
	}
}

// ResetStreams ends every stream, as a session that ended does (the guest
// side calls it when the host goes away).
func (m *Mux) ResetStreams() {
	for _, s := range m.takeAll() {
		s.closeLocal()
	}
}

func (m *Mux) dispatch(typ byte, id uint32, payload []byte) {
	switch typ {
	case frameOpen:
		if m.accept == nil {
			return // only the guest accepts streams
		}
		s := newStream(m, id)
		if old := m.swap(id, s); old != nil {
			old.closeLocal()
		}
		go m.accept(string(payload), s)
	case frameData:
		if s := m.lookup(id); s != nil {
			s.push(payload)
		}
	case frameClose:
		if s := m.lookup(id); s != nil {
			s.closeLocal()
		}
	case frameReset:
		m.ResetStreams()
	}
}

func (m *Mux) lookup(id uint32) *Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streams[id]
}

func (m *Mux) swap(id uint32, s *Stream) *Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.streams[id]
	m.streams[id] = s
	return old
}

func (m *Mux) forget(s *Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams[s.id] == s {
		delete(m.streams, s.id)
	}
}

func (m *Mux) takeAll() []*Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		out = append(out, s)
	}
	clear(m.streams)
	return out
}

func (m *Mux) closeAll() {
	m.markClosed()
	m.ResetStreams()
}

func (m *Mux) markClosed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
}

func (m *Mux) writeFrame(typ byte, id uint32, payload []byte) error {
	var h [headerLen]byte
	copy(h[:4], magic[:])
	h[4] = typ
	binary.BigEndian.PutUint32(h[5:9], id)
	binary.BigEndian.PutUint32(h[9:13], uint32(len(payload)))
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if _, err := m.w.Write(append(h[:], payload...)); err != nil {
		return fmt.Errorf("guestwire: writing frame: %w", err)
	}
	return nil
}

// readFrame reads the next frame, skipping bytes up to the next magic.
func readFrame(br *bufio.Reader) (typ byte, id uint32, payload []byte, err error) {
	matched := 0
	for matched < len(magic) {
		b, err := br.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		switch {
		case b == magic[matched]:
			matched++
		case b == magic[0]:
			matched = 1
		default:
			matched = 0
		}
	}
	var h [headerLen - 4]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, 0, nil, err
	}
	typ, id, n := h[0], binary.BigEndian.Uint32(h[1:5]), binary.BigEndian.Uint32(h[5:9])
	if typ < frameOpen || typ > frameReset || n > MaxPayload {
		// Not a frame after all (stale bytes that looked like a magic):
		// look for the next one.
		return readFrame(br)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, 0, nil, err
	}
	return typ, id, payload, nil
}

// Stream is one connection over the mux: an io.ReadWriteCloser. Reads get
// what the other side wrote, in order; Close ends it on both sides.
type Stream struct {
	m  *Mux
	id uint32

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool // no more data will come
	sent   bool // our close frame is out (or the mux is gone)
}

func newStream(m *Mux, id uint32) *Stream {
	s := &Stream{m: m, id: id}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Read implements io.Reader; io.EOF once the stream is over and drained.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) == 0 && !s.closed {
		s.cond.Wait()
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Write implements io.Writer.
func (s *Stream) Write(p []byte) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxPayload)]
		if err := s.m.writeFrame(frameData, s.id, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Close ends the stream on both sides; it is safe to call more than once.
func (s *Stream) Close() error {
	if !s.markSent() {
		return nil
	}
	s.closeLocal()
	return s.m.writeFrame(frameClose, s.id, nil)
}

func (s *Stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// markSent reports whether the caller is the one to send the close frame.
func (s *Stream) markSent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return false
	}
	s.sent = true
	return true
}

func (s *Stream) push(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.buf = append(s.buf, p...)
	s.cond.Broadcast()
}

// closeLocal ends the stream on this side: readers get io.EOF once the
// buffer is drained, writers ErrClosed.
func (s *Stream) closeLocal() {
	s.m.forget(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
}
