package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
)

func definition() map[string]any {
	return map[string]any{
		"uuid": "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23", "name": "local",
		"meta":   map[string]any{"ssh_public_key": "ssh-ed25519 AAAA"},
		"drives": []any{map[string]any{"dev_channel": "0:1", "device": "virtio", "drive": map[string]any{"uuid": "0b1f8a5e-0f43-4c21-a3a5-5b0e9c1e2d3f"}}},
	}
}

func TestContextReplies(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"uuid", "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23\n\x04"},
		{"/meta/ssh_public_key", "ssh-ed25519 AAAA\n\x04"},
		{"drives/0/dev_channel", "0:1\n\x04"},
		{"drives/7", "null\n\x04"},
		{"nothing", "null\n\x04"},
	} {
		if got := string(contextReply(definition(), tc.key)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.key, got, tc.want)
		}
	}
	var whole map[string]any
	line := contextReply(definition(), "")
	if err := json.Unmarshal(line[:len(line)-2], &whole); err != nil || whole["name"] != "local" {
		t.Errorf("whole context %q: %v", line, err)
	}
}

// The node's own client reads its identity from the responder, garbage on
// the line included.
func TestContextAnswersTheNodesClient(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	defer guest.Close()
	go func() { _ = ServeContext(host, definition) }()
	if _, err := guest.Write([]byte("<junk\n<")); err != nil { // noise, and a '<' that starts nothing
		t.Fatal(err)
	}
	c := &servercontext.Client{Open: func(string) (servercontext.Port, error) { return pipePort{guest}, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.ReadServerUUID(ctx, "/dev/ttyS1")
	if err != nil || id != "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23" {
		t.Fatalf("uuid %q %v", id, err)
	}
	sc, err := c.ReadContext(ctx, "/dev/ttyS1")
	if err != nil || len(sc.Drives) != 1 || sc.Drives[0].DevChannel != "0:1" || sc.Meta["ssh_public_key"] != "ssh-ed25519 AAAA" {
		t.Fatalf("context %+v %v", sc, err)
	}
}

type pipePort struct{ net.Conn }

func (p pipePort) Close() error { return nil } // the test owns the pipe

func TestReadRequestSkipsNoise(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("x<y<\n\n><\nuuid\n>"))
	for _, want := range []string{"", "uuid"} {
		got, err := readRequest(br)
		if err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
}
