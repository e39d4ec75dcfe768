package cloudsigma_test

import (
	"context"
	"slices"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

func TestServerUpdateWritesBackEveryField(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	id := e.sim.CreateServer("node-1", true)
	e.sim.CreateServer("node-2", false)
	d := e.readyDrive("attach-me", gib)

	srv, err := e.c.GetServer(ctx, id)
	if err != nil || srv.UUID != id || srv.Name != "node-1" || srv.Status != cloudsigma.StatusRunning {
		t.Fatalf("GetServer: %+v, %v", srv, err)
	}
	list, err := e.c.ListServers(ctx, cloudsigma.Filter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListServers: %d, %v", len(list), err)
	}
	if one, err := e.c.ListServers(ctx, cloudsigma.Filter{Name: []string{"node-1"}}); err != nil || len(one) != 1 || one[0].UUID != id {
		t.Fatalf("ListServers by name: %+v, %v", one, err)
	}
	before := asGeneric(t, srv).(map[string]any)
	for _, k := range []string{"cpu_type", "hypervisor", "pubkeys", "vnc_password", "nics", "runtime"} {
		if _, ok := before[k]; !ok {
			t.Fatalf("the simulated server lacks %q; the write-back check would prove nothing", k)
		}
	}

	out, err := e.c.UpdateServerDrives(ctx, srv, append(slices.Clone(srv.Drives),
		cloudsigma.ServerDrive{DevChannel: "0:0", Device: "virtio", Drive: cloudsigma.Ref{UUID: d.UUID}}))
	if err != nil {
		t.Fatal(err)
	}
	if entry, ok := out.HasDrive(d.UUID); !ok || entry.DevChannel != "0:0" || entry.Device != "virtio" {
		t.Fatalf("server after attach: %+v", out.Drives)
	}
	put := e.sim.LastServerPut(id)
	if put == nil {
		t.Fatal("no PUT recorded")
	}
	if len(put) != len(before) {
		t.Errorf("PUT has %d fields, GET had %d", len(put), len(before))
	}
	for k, v := range before {
		if k == "drives" {
			continue
		}
		if !sameJSON(t, put[k], v) {
			t.Errorf("field %q written back as %v, read as %v", k, put[k], v)
		}
	}
	want := []any{map[string]any{"dev_channel": "0:0", "device": "virtio", "drive": d.UUID}}
	if !sameJSON(t, put["drives"], want) {
		t.Errorf("drives written as %v, want %v", put["drives"], want)
	}
	got, err := e.c.GetDrive(ctx, d.UUID)
	if err != nil || !got.IsMountedOn(id) || got.Status != cloudsigma.StatusMounted {
		t.Fatalf("drive after attach: %+v, %v", got, err)
	}

	// Detach: re-read, write back without the drive.
	srv, err = e.c.GetServer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.UpdateServerDrives(ctx, srv, nil); err != nil {
		t.Fatal(err)
	}
	put = e.sim.LastServerPut(id)
	if drives, ok := put["drives"].([]any); !ok || len(drives) != 0 || !sameJSON(t, put["pubkeys"], before["pubkeys"]) {
		t.Fatalf("detach PUT: drives %v pubkeys %v", put["drives"], put["pubkeys"])
	}
	if err := cloudsigma.Poll(ctx, fastWait, func(ctx context.Context) (bool, error) {
		d, err := e.c.GetDrive(ctx, d.UUID)
		return err == nil && !d.IsMountedOn(id), err
	}); err != nil {
		t.Fatalf("drive never left the server: %v", err)
	}
}
