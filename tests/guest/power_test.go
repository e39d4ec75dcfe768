//go:build guest

package guest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// TestPower: the guest follows the simulated server. Stopping it through
// the API shuts the guest down; a drive attached meanwhile is there when
// the next start boots it; a detach from the running guest ends only once
// QEMU reports the disk deleted; the serial forms; a crash kills QEMU.
func TestPower(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := e.drive(ctx, t, "power-a")

	e.power(ctx, t, "stop")
	e.waitStatus(t, "stopped")
	if info, _ := e.Sim.GuestInfo(); info.Running {
		t.Fatal("the server is stopped and its guest still runs")
	}
	e.attach(ctx, t, a)
	e.power(ctx, t, "start")
	e.waitStatus(t, "running")
	info, _ := e.Sim.GuestInfo()
	if err := e.Sim.GuestReady(ctx); err != nil {
		t.Fatalf("after start: %v", err)
	}
	figure(t, "guest boot after a stop and start", time.Since(info.Started), "")
	if !contains(e.guestSerials(t), virtio.Serial(a)) {
		t.Fatalf("drive attached while stopped is not in the booted guest: %v", e.guestSerials(t))
	}

	// Detach: the drive stays on the server (detaching) until the guest
	// has let go of the disk.
	e.detach(ctx, t, a)
	for {
		srv, _ := e.Sim.Server(e.Server)
		if len(srv.Detaching) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if contains(e.guestSerials(t), virtio.Serial(a)) {
		t.Fatal("the detach ended while the disk was still in the guest")
	}

	// Serial forms, per server.
	for _, tc := range []struct{ form, want string }{
		{cloudsim.SerialNone, ""},
		{cloudsim.SerialHex, strings.ReplaceAll(a, "-", "")[:20]},
	} {
		if err := e.Sim.SetGuestSerial(e.Server, tc.form); err != nil {
			t.Fatal(err)
		}
		e.attach(ctx, t, a)
		e.waitGuest(ctx, t, "a disk", "ls -d /sys/block/vd* 2>/dev/null | wc -l", "1")
		serial, err := e.Sim.GuestRun(ctx, "sh", "-c", "cat /sys/block/vd*/serial")
		if err != nil || strings.TrimSpace(serial) != tc.want {
			t.Errorf("serial form %s: guest reads %q (%v), want %q", tc.form, serial, err, tc.want)
		}
		e.detach(ctx, t, a)
		e.waitGuest(ctx, t, "no disk", "ls -d /sys/block/vd* 2>/dev/null | wc -l", "0")
	}
	if err := e.Sim.SetGuestSerial(e.Server, cloudsim.SerialVirtio); err != nil {
		t.Fatal(err)
	}

	// Crash: SIGKILL, the server shows stopped, the node is gone.
	if err := e.Sim.CrashServer(e.Server); err != nil {
		t.Fatal(err)
	}
	if srv, _ := e.Sim.Server(e.Server); srv.Status != "stopped" {
		t.Fatalf("after a crash the server is %s, want stopped", srv.Status)
	}
	if info, _ := e.Sim.GuestInfo(); info.Running {
		t.Fatal("the guest runs after a crash")
	}
	nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
	defer ncancel()
	if _, err := e.nodeClient().NodeGetInfo(nctx, &csi.NodeGetInfoRequest{}); err == nil {
		t.Fatal("the node plugin answers after its guest was killed")
	}
}

func (e *env) drive(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	d, err := e.Client.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: gib, Media: "disk"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.WaitDrive(ctx, d.UUID, cloudsigma.WaitOptions{}, "unmounted"); err != nil {
		t.Fatal(err)
	}
	return d.UUID
}

func (e *env) attach(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	srv, err := e.Client.GetServer(ctx, e.Server)
	if err != nil {
		t.Fatal(err)
	}
	drives := append(srv.Drives, cloudsigma.ServerDrive{DevChannel: "0:1", Device: "virtio", Drive: cloudsigma.Ref{UUID: id}})
	if _, err := e.Client.UpdateServerDrives(ctx, srv, drives); err != nil {
		t.Fatalf("attaching %s: %v", id, err)
	}
}

func (e *env) detach(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	srv, err := e.Client.GetServer(ctx, e.Server)
	if err != nil {
		t.Fatal(err)
	}
	var drives []cloudsigma.ServerDrive
	for _, d := range srv.Drives {
		if d.Drive.UUID != id {
			drives = append(drives, d)
		}
	}
	if _, err := e.Client.UpdateServerDrives(ctx, srv, drives); err != nil {
		t.Fatalf("detaching %s: %v", id, err)
	}
}

// power runs a server action through the API (start, stop).
func (e *env) power(ctx context.Context, t *testing.T, do string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.APIURL+"servers/"+e.Server+"/action/?do="+do, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(harness.Username, harness.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: HTTP %d", do, resp.StatusCode)
	}
}

func (e *env) waitStatus(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		srv, _ := e.Sim.Server(e.Server)
		if srv.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s, want %s", srv.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGuest runs a shell line in the guest until it prints want.
func (e *env) waitGuest(ctx context.Context, t *testing.T, what, line, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := e.Sim.GuestRun(ctx, "sh", "-c", line)
		if err == nil && strings.TrimSpace(out) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest: waiting for %s: %q (%v)", what, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
