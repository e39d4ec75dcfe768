package driver

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixEndpoint(t *testing.T) {
	dir := t.TempDir()

	// A regular file at the endpoint is never removed.
	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listen("unix://" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen on a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "data" {
		t.Fatalf("the file at the endpoint was touched: %q, %v", b, err)
	}

	// A socket another process serves is left alone.
	sock := filepath.Join(dir, "csi.sock")
	busy, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("listen on a served socket: %v", err)
	}

	// A stale socket (nobody listens) is replaced.
	busy.(*net.UnixListener).SetUnlinkOnClose(false)
	busy.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("test setup: the stale socket should remain: %v", err)
	}
	ln, err := listen("unix://" + sock)
	if err != nil {
		t.Fatalf("listen on a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenTCPOnlyOnLoopback(t *testing.T) {
	for _, ep := range []string{"tcp://0.0.0.0:0", "tcp://:0", "tcp://10.1.2.3:10000", "tcp://example.com:1"} {
		if _, err := listen(ep); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("listen(%s) = %v; want a refusal naming loopback", ep, err)
		}
	}
	for _, ep := range []string{"tcp://127.0.0.1:0", "tcp://[::1]:0", "tcp://localhost:0"} {
		ln, err := listen(ep)
		if err != nil {
			if strings.Contains(ep, "::1") && strings.Contains(err.Error(), "assign") {
				continue // no IPv6 loopback on this machine
			}
			t.Errorf("listen(%s): %v", ep, err)
			continue
		}
		ln.Close()
	}
}
