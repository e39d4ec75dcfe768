package cloudsigma_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func TestDriveLifecycle(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)

	d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "vol-1", Size: gib, Meta: map[string]string{"pvc": "ns/claim"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != cloudsigma.StatusCreating || d.Name != "vol-1" || d.Size != cloudsigma.Int64(gib) || d.Media != "disk" {
		t.Fatalf("created %+v", d)
	}
	if sd, ok := e.sim.Drive(d.UUID); !ok || sd.Size != gib || sd.Meta["pvc"] != "ns/claim" {
		t.Fatalf("simulator has %+v (%v)", sd, ok)
	}
	if _, err := e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	d, err = e.c.GetDrive(ctx, d.UUID)
	if err != nil || d.Status != cloudsigma.StatusUnmounted || d.StorageType != "dssd" || d.Meta["pvc"] != "ns/claim" {
		t.Fatalf("GetDrive: %+v, %v", d, err)
	}

	// A tag, then an update that changes only name and tags: the meta set
	// at creation must survive the full-definition PUT.
	tag, err := e.c.CreateTag(ctx, "csi-managed")
	if err != nil || tag.UUID == "" || tag.Name != "csi-managed" {
		t.Fatalf("CreateTag: %+v, %v", tag, err)
	}
	d, err = e.c.UpdateDrive(ctx, d, cloudsigma.DriveUpdate{Name: ptr("vol-1b"), Tags: []string{tag.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := e.sim.Drive(d.UUID)
	if d.Name != "vol-1b" || sd.Name != "vol-1b" || sd.Meta["pvc"] != "ns/claim" || !slices.Equal(sd.Tags, []string{tag.UUID}) || sd.Size != gib {
		t.Fatalf("after update: client %+v, simulator %+v", d, sd)
	}
	tags, err := e.c.ListTags(ctx, cloudsigma.Filter{Name: []string{"csi-managed"}})
	if err != nil || len(tags) != 1 || len(tags[0].Resources) != 1 || tags[0].Resources[0].UUID != d.UUID {
		t.Fatalf("ListTags: %+v, %v", tags, err)
	}
	d, err = e.c.UpdateDrive(ctx, d, cloudsigma.DriveUpdate{Meta: map[string]string{"pvc": "ns/other"}})
	if sd, _ = e.sim.Drive(d.UUID); err != nil || sd.Meta["pvc"] != "ns/other" || sd.Name != "vol-1b" || len(sd.Tags) != 1 {
		t.Fatalf("meta update: %+v, %v", sd, err)
	}

	// Resize keeps every other field (it is a full-definition update).
	d, err = e.c.ResizeDrive(ctx, d, 2*gib)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != cloudsigma.StatusResizing || d.Size != cloudsigma.Int64(2*gib) {
		t.Fatalf("resize answer %+v", d)
	}
	if sd, _ = e.sim.Drive(d.UUID); sd.Size != 2*gib || sd.Name != "vol-1b" || sd.Meta["pvc"] != "ns/other" || len(sd.Tags) != 1 {
		t.Fatalf("after resize the simulator has %+v", sd)
	}
	if d, err = e.c.WaitDrive(ctx, d.UUID, fastWait, cloudsigma.StatusUnmounted); err != nil || d.Size != cloudsigma.Int64(2*gib) {
		t.Fatalf("after resize: %+v, %v", d, err)
	}

	// Clone, with its job.
	cl, err := e.c.CloneDrive(ctx, d.UUID, cloudsigma.DriveClone{Name: "vol-1-clone"})
	if err != nil {
		t.Fatal(err)
	}
	if cl.UUID == d.UUID || cl.Status != cloudsigma.StatusCloningDst || cl.Name != "vol-1-clone" || cl.Size != d.Size || len(cl.Jobs) != 1 {
		t.Fatalf("clone %+v", cl)
	}
	jobs, err := e.c.ListJobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].UUID != cl.Jobs[0].UUID || jobs[0].Operation != "drive_clone" {
		t.Fatalf("ListJobs: %+v, %v", jobs, err)
	}
	var resUUIDs []string
	for _, r := range jobs[0].Resources {
		resUUIDs = append(resUUIDs, r.UUID)
	}
	if !slices.Contains(resUUIDs, d.UUID) || !slices.Contains(resUUIDs, cl.UUID) {
		t.Errorf("job resources %v, want %s and %s", resUUIDs, d.UUID, cl.UUID)
	}
	if _, err := e.c.WaitDrive(ctx, cl.UUID, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	j, err := e.c.GetJob(ctx, cl.Jobs[0].UUID)
	if err != nil || j.State != "success" || j.Data.Progress != 100 || j.Created == "" {
		t.Fatalf("GetJob after the clone: %+v, %v", j, err)
	}

	// Delete is asynchronous; the drive disappears.
	if err := e.c.DeleteDrive(ctx, cl.UUID); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "deleted clone", func() error { _, err := e.c.GetDrive(ctx, cl.UUID); return err })
	if all, err := e.c.ListDrives(ctx, cloudsigma.Filter{}); err != nil || len(all) != 1 || all[0].UUID != d.UUID {
		t.Fatalf("ListDrives after delete: %d drives, %v", len(all), err)
	}
}

func TestSnapshots(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	d1 := e.readyDrive("snap-src-1", gib)
	d2 := e.readyDrive("snap-src-2", gib)

	s1, err := e.c.CreateSnapshot(ctx, cloudsigma.SnapshotCreate{Drive: d1.UUID, Name: "s1", Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Status != cloudsigma.StatusCreating || s1.Drive.UUID != d1.UUID || s1.Name != "s1" || s1.Meta["k"] != "v" {
		t.Fatalf("created %+v", s1)
	}
	if s1, err = e.c.WaitSnapshot(ctx, s1.UUID, fastWait, cloudsigma.StatusAvailable); err != nil {
		t.Fatal(err)
	}
	if got, err := e.c.GetSnapshot(ctx, s1.UUID); err != nil || got.Status != "available" || got.Timestamp == "" || got.AllocatedSize == nil {
		t.Fatalf("GetSnapshot: %+v, %v", got, err)
	}
	for _, def := range []cloudsigma.SnapshotCreate{{Drive: d1.UUID, Name: "s2"}, {Drive: d2.UUID, Name: "s3"}} {
		s, err := e.c.CreateSnapshot(ctx, def)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.WaitSnapshot(ctx, s.UUID, fastWait, cloudsigma.StatusAvailable); err != nil {
			t.Fatal(err)
		}
	}

	all, err := e.c.ListSnapshots(ctx, cloudsigma.Filter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("ListSnapshots: %d, %v", len(all), err)
	}
	of1, err := e.c.ListSnapshots(ctx, cloudsigma.Filter{Drive: []string{d1.UUID}})
	if err != nil || len(of1) != 2 || of1[0].Drive.UUID != d1.UUID || of1[1].Drive.UUID != d1.UUID {
		t.Fatalf("ListSnapshots of drive 1: %+v, %v", of1, err)
	}
	both, err := e.c.ListSnapshots(ctx, cloudsigma.Filter{Drive: []string{d1.UUID, d2.UUID}})
	if err != nil || len(both) != 3 {
		t.Fatalf("ListSnapshots of both drives: %d, %v", len(both), err)
	}
	page, err := e.c.ListSnapshotsPage(ctx, cloudsigma.Filter{Drive: []string{d1.UUID}}, 1, 1)
	if err != nil || page.Total != 2 || len(page.Items) != 1 || page.Items[0].UUID != of1[1].UUID {
		t.Fatalf("ListSnapshotsPage: %+v, %v", page, err)
	}

	// Restore: the documented answer is a bare drive whose resource_uri
	// is an object.
	r, err := e.c.CloneSnapshot(ctx, s1.UUID, cloudsigma.DriveClone{Name: "restored"})
	if err != nil {
		t.Fatal(err)
	}
	if r.UUID == "" || r.ResourceURI.UUID != r.UUID || r.Status != cloudsigma.StatusCloningDst || r.Name != "restored" || r.Size != cloudsigma.Int64(gib) {
		t.Fatalf("CloneSnapshot: %+v", r)
	}
	if sd, ok := e.sim.Drive(r.UUID); !ok || sd.Name != "restored" {
		t.Fatalf("restored drive in the simulator: %+v, %v", sd, ok)
	}
	if _, err := e.c.WaitDrive(ctx, r.UUID, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}

	if err := e.c.DeleteSnapshot(ctx, s1.UUID); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "deleted snapshot", func() error { _, err := e.c.GetSnapshot(ctx, s1.UUID); return err })
	if of1, err = e.c.ListSnapshots(ctx, cloudsigma.Filter{Drive: []string{d1.UUID}}); err != nil || len(of1) != 1 {
		t.Fatalf("after delete: %d, %v", len(of1), err)
	}
}

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

func TestCapabilities(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	caps, err := e.c.GetCapabilities(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps.Drives["dssd"].MinSize != 536870912 || caps.Drives["dssd"].MaxSize != 4391067795456 {
		t.Errorf("dssd limits %+v", caps.Drives["dssd"])
	}
	if caps.Drives["zadara"].MinSize != 1073741824 { // sent as 1073741824.0
		t.Errorf("zadara limits %+v", caps.Drives["zadara"])
	}
	if caps.Snapshots["max"] != 700 || caps.Snapshots["max_per_drive"] != 90 {
		t.Errorf("snapshot limits %+v", caps.Snapshots)
	}
}

func TestUploadDownloadImage(t *testing.T) {
	t.Parallel()
	const size = 4 << 20 // a multiple of the 64 KiB size granule
	e := newSimEnv(t, func(c *cloudsim.Config) {
		caps := cloudsim.DefaultCapabilities()
		caps.Drives["dssd"] = cloudsim.SizeLimits{Min: 1 << 20, Max: caps.Drives["dssd"].Max}
		c.Capabilities = caps
	}, nil)
	ctx := ctxT(t)
	img := make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	id, err := e.c.UploadImage(ctx, bytes.NewReader(img), size)
	if err != nil {
		t.Fatal(err)
	}
	if sd, ok := e.sim.Drive(id); !ok || sd.Size != size {
		t.Fatalf("uploaded drive %s: %+v, %v", id, sd, ok)
	}
	if _, err := e.c.WaitDrive(ctx, id, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	body, n, err := e.c.DownloadImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	copied, err := io.Copy(h, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(img); copied != size || !bytes.Equal(h.Sum(nil), want[:]) || (n != -1 && n != size) {
		t.Fatalf("downloaded %d bytes (length %d), sha256 %x, want %d bytes %x", copied, n, h.Sum(nil), size, want)
	}
	// The image came through the documented redirect, which was followed.
	if dl := e.settledCalls(http.MethodGet, "/drives/"+id+"/download/", 1); len(dl) != 1 || dl[0].Status/100 != 3 {
		t.Errorf("download call log: %+v", e.sim.Calls())
	}
	if _, _, err := e.c.DownloadImage(ctx, "00000000-0000-0000-0000-000000000000"); !cloudsigma.IsNotFound(err) {
		t.Errorf("download of a missing drive: %v", err)
	}
	if _, err := e.c.UploadImage(ctx, bytes.NewReader(nil), 0); err == nil {
		t.Error("an empty upload was accepted")
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	for i := range 45 {
		if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: fmt.Sprintf("page-%02d", i), Size: gib}); err != nil {
			t.Fatal(err)
		}
	}
	small := e.client(func(c *cloudsigma.Config) { c.PageSize = 20 })
	for _, tc := range []struct {
		name      string
		c         *cloudsigma.Client
		wantPages int
	}{{"default page size", e.c, 1}, {"page size 20", small, 3}} {
		e.sim.ResetCalls()
		all, err := tc.c.ListDrives(ctx, cloudsigma.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, d := range all {
			seen[d.UUID] = true
		}
		if len(all) != 45 || len(seen) != 45 {
			t.Errorf("%s: ListDrives returned %d drives (%d distinct), want 45", tc.name, len(all), len(seen))
		}
		calls := e.settledCalls(http.MethodGet, "/drives/detail/", tc.wantPages)
		if len(calls) != tc.wantPages {
			t.Errorf("%s: %d list calls, want %d", tc.name, len(calls), tc.wantPages)
		}
		for i, c := range calls {
			q := query(t, c)
			limit, lerr := strconv.Atoi(q.Get("limit"))
			offset, oerr := strconv.Atoi(q.Get("offset"))
			if lerr != nil || oerr != nil || limit <= 0 || (tc.wantPages > 1 && offset != i*limit) {
				t.Errorf("%s: call %d without an explicit positive limit and offset: %q", tc.name, i, c.Query)
			}
		}
	}
	page, err := e.c.ListDrivesPage(ctx, cloudsigma.Filter{}, 40, 20)
	if err != nil || page.Total != 45 || len(page.Items) != 5 || page.Items[0].Name != "page-40" {
		t.Fatalf("last page: %d items, total %d, %v", len(page.Items), page.Total, err)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	ids := map[string]string{}
	for _, name := range []string{"alpha", "beta", "gamma", "pvc,with,commas", "pvc", "with", `dir\`, `C:\data`} {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = d.UUID
	}
	names := func(ds []cloudsigma.Drive) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		f    cloudsigma.Filter
		want []string
	}{
		{cloudsigma.Filter{Name: []string{"alpha", "gamma"}}, []string{"alpha", "gamma"}},
		{cloudsigma.Filter{Name: []string{"pvc,with,commas"}}, []string{"pvc,with,commas"}},
		{cloudsigma.Filter{Name: []string{"beta", "pvc,with,commas", "missing"}}, []string{"beta", "pvc,with,commas"}},
		{cloudsigma.Filter{NameContains: "c,w"}, []string{"pvc,with,commas"}},
		{cloudsigma.Filter{NameContains: "a"}, []string{"C:\\data", "alpha", "beta", "gamma", "pvc,with,commas"}},
		{cloudsigma.Filter{UUID: []string{ids["beta"], ids["with"]}}, []string{"beta", "with"}},
		{cloudsigma.Filter{Name: []string{"alpha", "beta"}, UUID: []string{ids["beta"]}}, []string{"beta"}},
		{cloudsigma.Filter{Name: []string{"nothing"}}, nil},
		// A backslash ending an ORed value is escaped so that it does not
		// escape the separating comma (manual 2.15).
		{cloudsigma.Filter{Name: []string{`dir\`, "alpha"}}, []string{"alpha", `dir\`}},
	} {
		got, err := e.c.ListDrives(ctx, tc.f)
		if err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		if !slices.Equal(names(got), tc.want) {
			t.Errorf("filter %+v matched %q, want %q", tc.f, names(got), tc.want)
		}
	}
}

// TestFilterBackslashEscaping: the manual (2.15) gives a meaning only to a
// backslash in front of a comma ("\," is a literal comma, "\\," a
// literal backslash followed by a separator); any other backslash is an
// ordinary character. A name with a backslash elsewhere must therefore be
// sent as is.
func TestFilterBackslashEscaping(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: `C:\data`, Size: gib}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []cloudsigma.Filter{{Name: []string{`C:\data`}}, {Name: []string{`C:\data`, "other"}}, {NameContains: `:\d`}} {
		e.sim.ResetCalls()
		got, err := e.c.ListDrives(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			var q []string
			for _, c := range e.calls(http.MethodGet, "/drives/detail/") {
				q = append(q, c.Query)
			}
			t.Errorf("filter %+v matched %d drives, want 1 (sent %q)", f, len(got), q)
		}
	}
}
