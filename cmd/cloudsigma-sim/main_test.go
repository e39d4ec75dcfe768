package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	args := []string{"--listen", "127.0.0.1:0", "--username", "U", "--password", "hunter2-secret", "--data-dir", t.TempDir()}
	go func() { done <- run(ctx, args, logs, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not listening")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/2.0/drives/?limit=0", nil)
	req.SetBasicAuth("U", "hunter2-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Meta    map[string]int `json:"meta"`
		Objects []any          `json:"objects"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || body.Objects == nil || body.Meta["limit"] != 0 || body.Meta["total_count"] != 0 {
		t.Fatalf("list: %d %+v %v", resp.StatusCode, body, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no clean shutdown")
	}
	out := logs.String()
	if !strings.Contains(out, "GET /api/2.0/drives/?limit=0 200") {
		t.Fatalf("call not logged:\n%s", out)
	}
	if strings.Contains(out, "hunter2-secret") {
		t.Fatal("password logged")
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"listen", "username", "password", "token", "local-server", "guest-devices",
		"data-dir", "create-delay", "clone-delay", "resize-delay", "snapshot-delay", "delete-delay",
		"detach-delay", "server-update-delay", "guest-appear-delay", "enforce-rate-limits",
		"guest-qemu", "guest-dir", "guest-accel", "guest-memory", "guest-serial", "guest-node-args", "guest-server", "guest-qemu-server", "hotplug"} {
		if !strings.Contains(out.String(), "-"+f) {
			t.Errorf("--help does not document --%s", f)
		}
	}
}

func TestCredentials(t *testing.T) {
	t.Setenv("CLOUDSIGMA_USERNAME", "")
	t.Setenv("CLOUDSIGMA_PASSWORD", "")
	if _, err := parseFlags([]string{"--username", "u"}, &bytes.Buffer{}); err == nil {
		t.Fatal("missing password accepted")
	}
	t.Setenv("CLOUDSIGMA_USERNAME", "envuser")
	t.Setenv("CLOUDSIGMA_PASSWORD", "envpass")
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil || o.cfg.Username != "envuser" || o.cfg.Password != "envpass" {
		t.Fatalf("env credentials: %+v %v", o, err)
	}
	if o.cfg.Delays.Create != 200*time.Millisecond || o.cfg.Delays.Detach != 500*time.Millisecond || o.listen != "127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestGuestQEMUFlags(t *testing.T) {
	o, err := parseFlags([]string{"--username", "u", "--password", "p"}, &bytes.Buffer{})
	if err != nil || o.cfg.QEMU != nil {
		t.Fatalf("without --guest-qemu: QEMU %+v %v, want none", o.cfg.QEMU, err)
	}
	o, err = parseFlags([]string{"--username", "u", "--password", "p", "--guest-qemu", "bin/guest",
		"--guest-accel", "tcg", "--guest-serial", "none", "--guest-node-args", "--location=sim,-v=4"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	q := o.cfg.QEMU
	if q == nil || q.ImageDir != "bin/guest" || q.Accel != "tcg" || q.Serial != "none" || q.MemoryMiB != 512 ||
		len(q.NodeArgs) != 2 || q.NodeArgs[0] != "--location=sim" || q.NodeArgs[1] != "-v=4" {
		t.Fatalf("QEMU guest %+v", q)
	}
	// More QEMU guests share the local one's settings, each with its own
	// serial form and directory.
	b := "0b8a3c2e-2222-4d2f-9a0e-6f7d8c9b0a1e"
	o, err = parseFlags([]string{"--username", "u", "--password", "p", "--guest-qemu", "bin/guest", "--guest-dir", "/tmp/g",
		"--guest-serial", "hex", "--guest-qemu-server", b + "=none"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if g := o.cfg.QEMUServers[b]; len(o.cfg.QEMUServers) != 1 || g.ImageDir != "bin/guest" || g.Serial != "none" || g.Dir != "/tmp/g/"+b || o.cfg.QEMU.Serial != "hex" {
		t.Fatalf("QEMU guest servers %+v (local %+v)", o.cfg.QEMUServers, o.cfg.QEMU)
	}
	if _, err := parseFlags([]string{"--username", "u", "--password", "p", "--guest-qemu-server", b}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--guest-qemu") {
		t.Errorf("--guest-qemu-server without --guest-qemu: %v, want a refusal naming --guest-qemu", err)
	}
}

func TestGuestServerFlag(t *testing.T) {
	a, b := "0b8a3c2e-1111-4d2f-9a0e-6f7d8c9b0a1e", "0b8a3c2e-2222-4d2f-9a0e-6f7d8c9b0a1e"
	o, err := parseFlags([]string{"--username", "u", "--password", "p", "--guest-server", a + "=/tmp/a", "--guest-server", b + "=/tmp/b"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if g := o.cfg.GuestServers; len(g) != 2 || g[a] != "/tmp/a" || g[b] != "/tmp/b" {
		t.Fatalf("guest servers %v", g)
	}
	for _, bad := range []string{"no-equals", "=/tmp/a", a + "=", a + "=/tmp/a,--guest-server=" + a + "=/tmp/c"} {
		args := []string{"--username", "u", "--password", "p"}
		for _, v := range strings.Split(bad, ",--guest-server=") {
			args = append(args, "--guest-server", v)
		}
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "guest-server") {
			t.Errorf("--guest-server %q: %v, want a refusal naming the flag", bad, err)
		}
	}
}
