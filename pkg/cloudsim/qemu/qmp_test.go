package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQEMU speaks QMP on one end of a pipe: a greeting, then it answers
// each command with handle's reply and may send events.
type fakeQEMU struct {
	t    *testing.T
	conn net.Conn
	got  chan map[string]any
}

func startFake(t *testing.T, handle func(f *fakeQEMU, cmd string, args map[string]any, id any)) (*qmp, *fakeQEMU) {
	t.Helper()
	client, server := net.Pipe()
	f := &fakeQEMU{t: t, conn: server, got: make(chan map[string]any, 64)}
	go func() {
		f.send(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []any{}}})
		sc := bufio.NewScanner(server)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("client sent %q: %v", sc.Text(), err)
				return
			}
			f.got <- m
			args, _ := m["arguments"].(map[string]any)
			handle(f, m["execute"].(string), args, m["id"])
		}
	}()
	t.Cleanup(func() { client.Close(); server.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := newQMP(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	return q, f
}

func (f *fakeQEMU) send(m map[string]any) {
	b, _ := json.Marshal(m)
	if _, err := f.conn.Write(append(b, '\n')); err != nil {
		f.t.Logf("fake qemu write: %v", err)
	}
}

func TestQMPNegotiatesAndMatchesRepliesByID(t *testing.T) {
	q, f := startFake(t, func(f *fakeQEMU, cmd string, args map[string]any, id any) {
		switch cmd {
		case "qmp_capabilities":
			f.send(map[string]any{"return": map[string]any{}, "id": id})
		case "query-status":
			// An event first, then the reply: the client must not mistake one for the other.
			f.send(map[string]any{"event": "RESUME", "data": map[string]any{}})
			f.send(map[string]any{"return": map[string]any{"status": "running"}, "id": id})
		case "device_add":
			f.send(map[string]any{"error": map[string]any{"class": "GenericError", "desc": "Bus 'hp0' not found"}, "id": id})
		}
	})
	if first := <-f.got; first["execute"] != "qmp_capabilities" {
		t.Fatalf("first command %v, want qmp_capabilities", first)
	}
	ctx := context.Background()
	ret, err := q.call(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(ret), "running") {
		t.Fatalf("query-status: %s %v", ret, err)
	}
	_, err = q.call(ctx, "device_add", map[string]any{"driver": "virtio-blk-pci"})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "GenericError" || !strings.Contains(err.Error(), "hp0") {
		t.Fatalf("device_add error %v, want the QMP error", err)
	}
}

func TestQMPDeliversDeviceDeletedToSubscribers(t *testing.T) {
	q, _ := startFake(t, func(f *fakeQEMU, cmd string, args map[string]any, id any) {
		f.send(map[string]any{"return": map[string]any{}, "id": id})
		if cmd == "device_del" {
			// QEMU reports the virtio backend (no id) and then the device.
			f.send(map[string]any{"event": "DEVICE_DELETED", "data": map[string]any{"path": "/machine/peripheral/dev-a/virtio-backend"}})
			f.send(map[string]any{"event": "DEVICE_DELETED", "data": map[string]any{"device": args["id"], "path": "/machine/peripheral/dev-a"}})
		}
	})
	events, cancel := q.subscribe(func(ev Event) bool { return deletedDevice(ev) != "" })
	defer cancel()
	if _, err := q.call(context.Background(), "device_del", map[string]any{"id": "dev-a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if got := deletedDevice(ev); got != "dev-a" {
			t.Fatalf("deleted %q, want dev-a", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DEVICE_DELETED for dev-a")
	}
}

func TestQMPCallFailsWhenQEMUGoes(t *testing.T) {
	q, _ := startFake(t, func(f *fakeQEMU, cmd string, args map[string]any, id any) {
		if cmd == "qmp_capabilities" {
			f.send(map[string]any{"return": map[string]any{}, "id": id})
			return
		}
		f.conn.Close() // QEMU exits without answering
	})
	_, err := q.call(context.Background(), "quit", nil)
	if !errors.Is(err, errQMPClosed) {
		t.Fatalf("got %v, want errQMPClosed", err)
	}
	if _, err := q.call(context.Background(), "cont", nil); !errors.Is(err, errQMPClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestQMPCallHonoursContext(t *testing.T) {
	q, _ := startFake(t, func(f *fakeQEMU, cmd string, args map[string]any, id any) {
		if cmd == "qmp_capabilities" {
			f.send(map[string]any{"return": map[string]any{}, "id": id})
		} // anything else: no answer
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.call(ctx, "device_del", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
}
