package servercontext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	serverUUID = "6ef0b4f0-8a8c-4b8e-9a63-3b1c2d4e5f60"
	driveA     = "2f1c8b6e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
	driveB     = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
)

// contextJSON mimics a real reply: drives expanded to full definitions,
// fields the client does not model, meta with a non-string value.
var contextJSON = fmt.Sprintf(`{"cpu": 2000, "mem": 2147483648, "name": "node-1", "uuid": %q, `+
	`"meta": {"ssh_public_key": "ssh-ed25519 AAAA x", "k8s": 1}, "nics": [], `+
	`"drives": [{"boot_order": 1, "dev_channel": "0:0", "device": "virtio", "drive": {"uuid": %q, "name": "boot", "size": 10737418240}}, `+
	`{"boot_order": null, "dev_channel": "0:1", "device": "virtio", "drive": {"uuid": %q, "storage_type": "dssd", `+
	`"name": "pvc-1", "meta": {"csi_driver": "csi.cloudsigma.com", "n": 5}}}]}`,
	serverUUID, driveA, driveB)

// hypervisor answers requests on rw: reply(key, n) gives the bytes for the
// n-th request (0-based); nil means stay silent. It records the requests.
type hypervisor struct {
	mu       sync.Mutex
	requests []string
}

func (h *hypervisor) serve(t *testing.T, rw io.ReadWriter, reply func(key string, n int) []byte) {
	var pending []byte
	buf := make([]byte, 1024)
	for {
		n, err := rw.Read(buf)
		if errors.Is(err, syscall.EIO) {
			// A pty master reads EIO while no slave is open (between two
			// client calls); a real serial port simply stays quiet.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err != nil {
			return
		}
		pending = append(pending, buf[:n]...)
		for {
			start := bytes.IndexByte(pending, '<')
			end := bytes.IndexByte(pending, '>')
			if start < 0 || end < start {
				break
			}
			req := string(pending[start : end+1])
			pending = pending[end+1:]
			h.mu.Lock()
			h.requests = append(h.requests, req)
			idx := len(h.requests) - 1
			h.mu.Unlock()
			if out := reply(strings.TrimSpace(req[1:len(req)-1]), idx); out != nil {
				if _, err := rw.Write(out); err != nil {
					t.Errorf("hypervisor write: %v", err)
					return
				}
			}
		}
	}
}

func (h *hypervisor) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

// pipePort is the io seam: the client end of two pipes.
type pipePort struct{ r, w *os.File }

func (p pipePort) Read(b []byte) (int, error)        { return p.r.Read(b) }
func (p pipePort) Write(b []byte) (int, error)       { return p.w.Write(b) }
func (p pipePort) SetReadDeadline(t time.Time) error { return p.r.SetReadDeadline(t) }
func (p pipePort) Close() error                      { p.w.Close(); return p.r.Close() }

func newPipes(t *testing.T) (func(string) (Port, error), hvEnd) {
	t.Helper()
	toHV, fromClient, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromHV, toClient, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	port := pipePort{r: fromHV, w: fromClient}
	hv := hvEnd{r: toHV, w: toClient}
	t.Cleanup(hv.close)
	return func(string) (Port, error) { return port, nil }, hv
}

// hvEnd is the hypervisor's end of the two pipes.
type hvEnd struct{ r, w *os.File }

func (h hvEnd) Read(b []byte) (int, error)  { return h.r.Read(b) }
func (h hvEnd) Write(b []byte) (int, error) { return h.w.Write(b) }
func (h hvEnd) close()                      { h.r.Close(); h.w.Close() }

func fastClient(open func(string) (Port, error)) *Client {
	return &Client{Open: open, Attempts: 4, AttemptTimeout: 300 * time.Millisecond, Backoff: 10 * time.Millisecond}
}

func TestReadContextOverPipe(t *testing.T) {
	open, hvSide := newPipes(t)
	hv := &hypervisor{}
	go hv.serve(t, hvSide, func(key string, _ int) []byte { return []byte(contextJSON + "\n\x04") })

	sc, err := fastClient(open).ReadContext(context.Background(), "pipe")
	if err != nil {
		t.Fatal(err)
	}
	if sc.UUID != serverUUID || sc.Name != "node-1" {
		t.Errorf("uuid/name = %q/%q", sc.UUID, sc.Name)
	}
	if sc.Meta["ssh_public_key"] != "ssh-ed25519 AAAA x" || sc.Meta["k8s"] != "1" {
		t.Errorf("meta = %v", sc.Meta)
	}
	want := []Drive{
		{DriveUUID: driveA, DevChannel: "0:0", Device: "virtio", Boot: true, Defined: true, Name: "boot", Meta: map[string]string{}, Size: 10737418240},
		{DriveUUID: driveB, DevChannel: "0:1", Device: "virtio", Defined: true, Name: "pvc-1",
			Meta: map[string]string{"csi_driver": "csi.cloudsigma.com", "n": "5"}},
	}
	if fmt.Sprint(sc.Drives) != fmt.Sprint(want) {
		t.Errorf("drives = %v, want %v", sc.Drives, want)
	}
	if got := hv.seen(); len(got) != 1 || got[0] != "<\n\n>" {
		t.Errorf("requests = %q, want one whole-context request", got)
	}
}

func TestReadServerUUIDRetriesBadReplies(t *testing.T) {
	open, hvSide := newPipes(t)
	hv := &hypervisor{}
	go hv.serve(t, hvSide, func(key string, n int) []byte {
		switch n {
		case 0:
			return nil // silent: early boot
		case 1:
			return []byte("6ef0b4f0-8a\x00\xff\n\x04") // garbled
		case 2:
			return []byte("not-a-uuid\n\x04")
		}
		// noise before the reply and CRLF line ends are tolerated
		return []byte("junk\r\n" + strings.ToUpper(serverUUID) + "\r\n\x04")
	})
	id, err := fastClient(open).ReadServerUUID(context.Background(), "pipe")
	if err != nil || id != serverUUID {
		t.Fatalf("ReadServerUUID = %q, %v; want %s", id, err, serverUUID)
	}
	got := hv.seen()
	if len(got) != 4 || got[3] != "<\nuuid\n>" {
		t.Errorf("requests = %q, want 4 uuid requests", got)
	}
}

func TestServerContextGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"silent (context disabled)", nil, "disabled"},
		{"always garbled", []byte("{\"uuid\": \"6ef0\n\x04"), "garbled"},
		{"no server uuid", []byte(`{"name": "x", "drives": []}` + "\n\x04"), "no valid server uuid"},
		{"drive without uuid", []byte(`{"uuid": "` + serverUUID + `", "drives": [{"dev_channel": "0:1", "drive": {"name": "x"}}]}` + "\n\x04"), "no drive uuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, hvSide := newPipes(t)
			hv := &hypervisor{}
			go hv.serve(t, hvSide, func(string, int) []byte { return tc.reply })
			start := time.Now()
			sc, err := fastClient(open).ReadContext(context.Background(), "pipe")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadContext = %+v, %v; want error containing %q", sc, err, tc.want)
			}
			if n := len(hv.seen()); n != 4 {
				t.Errorf("%d requests, want 4 attempts", n)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("gave up after %s", took)
			}
		})
	}
}

func TestParseDriveAsResourceURI(t *testing.T) {
	line := `{"uuid": "` + serverUUID + `", "drives": [{"dev_channel": "0:2", "device": "virtio", "drive": "/api/2.0/drives/` + driveA + `/"}]}`
	sc, err := parseContext([]byte(line))
	if err != nil || len(sc.Drives) != 1 || sc.Drives[0].DriveUUID != driveA {
		t.Fatalf("parseContext = %+v, %v", sc, err)
	}
	// Only a URI: what the drive is, the context does not say.
	if d := sc.Drives[0]; d.Defined || d.Name != "" || d.Boot {
		t.Errorf("drive given by URI = %+v, want no definition and not boot", d)
	}
}

// openPTY returns the master of a new pty pair and the slave's path, which
// stands in for /dev/ttyS1.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil {
		t.Fatalf("unlocking pty: %v", err)
	}
	return master, fmt.Sprintf("/dev/pts/%d", n)
}

// A real tty: OpenTTY must make it raw (else the EOT is swallowed as VEOF
// and the request echoed back), and a garbled first reply is retried.
func TestReadContextOverRealPTY(t *testing.T) {
	master, slave := openPTY(t)
	hv := &hypervisor{}
	go hv.serve(t, master, func(key string, n int) []byte {
		if n == 0 {
			return []byte(`{"uuid": "6ef0b4f0-8a8c-4b8e-9a63-3b1c2d4e5f60", "drives": [{"dev_ch` + "\n\x04")
		}
		if key == "uuid" {
			return []byte(serverUUID + "\n\x04")
		}
		return []byte(contextJSON + "\n\x04")
	})
	c := &Client{Attempts: 3, AttemptTimeout: time.Second, Backoff: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := c.ReadContext(ctx, slave)
	if err != nil {
		t.Fatal(err)
	}
	if sc.UUID != serverUUID || len(sc.Drives) != 2 || sc.Drives[1].DriveUUID != driveB {
		t.Errorf("context = %+v", sc)
	}
	id, err := c.ReadServerUUID(ctx, slave)
	if err != nil || id != serverUUID {
		t.Errorf("ReadServerUUID = %q, %v", id, err)
	}
	if got := hv.seen(); len(got) != 3 || got[0] != "<\n\n>" || got[1] != "<\n\n>" || got[2] != "<\nuuid\n>" {
		t.Errorf("requests = %q, want garbled+retry+uuid", got)
	}

	port, err := OpenTTY(slave)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	err = control(port.(*os.File), func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		if tio.Lflag&(unix.ECHO|unix.ICANON) != 0 || tio.Oflag&unix.OPOST != 0 {
			return fmt.Errorf("tty not raw: lflag=%#x oflag=%#x", tio.Lflag, tio.Oflag)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
