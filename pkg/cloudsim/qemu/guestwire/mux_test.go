package guestwire

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair connects a host mux and a guest mux over an in-memory pipe; the
// guest echoes every stream back, upper-cased.
func pair(t *testing.T) (host *Mux, opened chan string) {
	t.Helper()
	hc, gc := net.Pipe()
	opened = make(chan string, 16)
	guest := NewMux(gc, func(kind string, s *Stream) {
		opened <- kind
		defer s.Close()
		buf := make([]byte, 7) // small: data arrives in several reads
		for {
			n, err := s.Read(buf)
			if n > 0 {
				if _, werr := s.Write(bytes.ToUpper(buf[:n])); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}, 0)
	host = NewMux(hc, nil, 1000)
	go func() { _ = guest.Serve(gc) }()
	go func() { _ = host.Serve(hc) }()
	t.Cleanup(func() { hc.Close(); gc.Close() })
	if err := host.Reset(); err != nil {
		t.Fatal(err)
	}
	return host, opened
}

func TestStreamsAreIndependent(t *testing.T) {
	host, opened := pair(t)
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := host.Open(KindCSI)
			if err != nil {
				t.Error(err)
				return
			}
			msg := strings.Repeat(string(rune('a'+i)), MaxPayload+100) // more than one frame
			go func() { _, _ = s.Write([]byte(msg)) }()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(s, got); err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			if string(got) != strings.ToUpper(msg) {
				t.Errorf("stream %d: data mixed up with another stream", i)
			}
			s.Close()
		}(i)
	}
	wg.Wait()
	for i := 0; i < 5; i++ {
		if k := <-opened; k != KindCSI {
			t.Errorf("kind %q", k)
		}
	}
}

func TestCloseReachesTheOtherSide(t *testing.T) {
	host, _ := pair(t)
	s, err := host.Open(KindExec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("y")); err != ErrClosed {
		t.Errorf("write after close: %v, want ErrClosed", err)
	}
	// The guest's handler sees EOF and closes its end, which ends the read
	// of a second stream only if frames still flow: check the mux is alive.
	s2, _ := host.Open(KindCSI)
	go func() { _, _ = s2.Write([]byte("ok")) }()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s2, buf); err != nil || string(buf) != "OK" {
		t.Fatalf("second stream: %q %v", buf, err)
	}
}

func TestReaderSkipsStaleBytes(t *testing.T) {
	var out bytes.Buffer
	m := NewMux(&out, nil, 0)
	if err := m.writeFrame(frameData, 7, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Garbage, a false magic with an invalid type, then the frame.
	in := append([]byte("junkCSGW\xff\x00\x00\x00\x00\x00\x00\x00\x00CSCS"), out.Bytes()...)
	typ, id, p, err := readFrame(bufio.NewReader(bytes.NewReader(in)))
	if err != nil || typ != frameData || id != 7 || string(p) != "hello" {
		t.Fatalf("got %d %d %q %v", typ, id, p, err)
	}
}

func TestResetEndsGuestStreams(t *testing.T) {
	hc, gc := net.Pipe()
	defer hc.Close()
	defer gc.Close()
	got := make(chan *Stream, 1)
	guest := NewMux(gc, func(_ string, s *Stream) { got <- s }, 0)
	go func() { _ = guest.Serve(gc) }()
	host := NewMux(hc, nil, 0)
	go func() { _ = host.Serve(hc) }()
	if _, err := host.Open(KindCSI); err != nil {
		t.Fatal(err)
	}
	gs := <-got
	if err := host.Reset(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := gs.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("read after reset: %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reset did not end the guest's stream")
	}
}

func TestExecMessagesRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMessage(&b, Request{Argv: []string{"mkdir", "-p", "/x"}, TimeoutMS: 5}); err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := ReadMessage(&b, &r); err != nil || len(r.Argv) != 3 || r.TimeoutMS != 5 {
		t.Fatalf("%+v %v", r, err)
	}
}
