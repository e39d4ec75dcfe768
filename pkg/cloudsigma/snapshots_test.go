package cloudsigma_test

import (
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

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
