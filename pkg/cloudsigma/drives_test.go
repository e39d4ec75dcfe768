package cloudsigma_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
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

// TestAvoidIsAQueryParameter: avoid is the GET parameter of create and
// clone ("POST /drives/?avoid={uuid1},{uuid2}", "?do=clone&avoid=..."),
// a comma-separated list of drive or server UUIDs.
func TestAvoidIsAQueryParameter(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	a := e.readyDrive("avoid-a", gib)
	b := e.readyDrive("avoid-b", gib)
	want := a.UUID + "," + b.UUID

	e.sim.ResetCalls()
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "apart", Size: gib, Avoid: []string{a.UUID, b.UUID}}); err != nil {
		t.Fatal(err)
	}
	if calls := e.settledCalls(http.MethodPost, "/drives/", 1); len(calls) != 1 || query(t, calls[0]).Get("avoid") != want {
		t.Errorf("create calls %+v, want avoid=%s in the query", calls, want)
	}

	e.sim.ResetCalls()
	if _, err := e.c.CloneDrive(ctx, a.UUID, cloudsigma.DriveClone{Name: "apart-clone", Avoid: []string{a.UUID, b.UUID}}); err != nil {
		t.Fatal(err)
	}
	calls := e.settledCalls(http.MethodPost, "/drives/"+a.UUID+"/action/", 1)
	if len(calls) != 1 || query(t, calls[0]).Get("avoid") != want || query(t, calls[0]).Get("do") != "clone" {
		t.Errorf("clone calls %+v, want do=clone&avoid=%s", calls, want)
	}
}
