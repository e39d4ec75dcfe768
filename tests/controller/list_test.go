package controller_test

import (
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

// ListVolumes and ListSnapshots page with tokens: max_entries is honoured,
// every entry is seen once, a foreign token is Aborted and a negative
// max_entries InvalidArgument.
func TestListPagination(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	const n = 5
	want := map[string]bool{}
	var src string
	for i := 0; i < n; i++ {
		v := create(t, c, fmt.Sprintf("pvc-page-%d", i), gib, nil)
		want[v.GetVolumeId()] = true
		src = v.GetVolumeId()
	}
	for i := 0; i < n; i++ {
		if _, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: fmt.Sprintf("snap-page-%d", i), SourceVolumeId: src}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for tok, pages := "", 0; ; pages++ {
		resp, err := c.ListVolumes(ctxT(t), &csi.ListVolumesRequest{MaxEntries: 2, StartingToken: tok})
		if err != nil || len(resp.GetEntries()) > 2 || pages > n {
			t.Fatalf("ListVolumes page %d: %v %v", pages, resp, err)
		}
		for _, en := range resp.GetEntries() {
			seen[en.GetVolume().GetVolumeId()] = true
		}
		if tok = resp.GetNextToken(); tok == "" {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("ListVolumes pages held %d volumes, want %d", len(seen), n)
	}
	snaps := map[string]bool{}
	for tok, pages := "", 0; ; pages++ {
		resp, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{MaxEntries: 2, StartingToken: tok, SourceVolumeId: src})
		if err != nil || len(resp.GetEntries()) > 2 || pages > n {
			t.Fatalf("ListSnapshots page %d: %v %v", pages, resp, err)
		}
		for _, en := range resp.GetEntries() {
			if en.GetSnapshot().GetSourceVolumeId() != src {
				t.Fatalf("snapshot of another volume listed: %v", en)
			}
			snaps[en.GetSnapshot().GetSnapshotId()] = true
		}
		if tok = resp.GetNextToken(); tok == "" {
			break
		}
	}
	if len(snaps) != n {
		t.Fatalf("ListSnapshots pages held %d snapshots, want %d", len(snaps), n)
	}
	for _, tok := range []string{"garbage", "-1", "999"} {
		if _, err := c.ListVolumes(ctxT(t), &csi.ListVolumesRequest{StartingToken: tok}); status.Code(err) != codes.Aborted {
			t.Fatalf("ListVolumes token %q: %v, want Aborted", tok, err)
		}
		if _, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{StartingToken: tok}); status.Code(err) != codes.Aborted {
			t.Fatalf("ListSnapshots token %q: %v, want Aborted", tok, err)
		}
	}
	if _, err := c.ListVolumes(ctxT(t), &csi.ListVolumesRequest{MaxEntries: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ListVolumes max_entries -1: %v", err)
	}
	if _, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{MaxEntries: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ListSnapshots max_entries -1: %v", err)
	}
}
