// Package controller_test drives the real controller over its unix socket
// against the simulator, for what csi-sanity does not cover: concurrency,
// injected API failures, sizes of clones and restores, offline expansion,
// and idempotency across a driver restart.
package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

const gib = int64(1) << 30

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, c csi.ControllerClient, name string, size int64, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: src,
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

// retry calls f like a sidecar: again on retryable codes, until success.
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Internal:
		default:
			t.Fatalf("%s: non-retryable error: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after a minute: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func drivesNamed(e *harness.Env, name string) []cloudsim.Drive {
	var out []cloudsim.Drive
	for _, d := range e.Sim.Drives() {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

func volumeSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

func snapshotSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func listVolumeIDs(t *testing.T, c csi.ControllerClient) map[string]bool {
	t.Helper()
	resp, err := c.ListVolumes(ctxT(t), &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatalf("ListVolumes: %v", err)
	}
	ids := map[string]bool{}
	for _, e := range resp.GetEntries() {
		ids[e.GetVolume().GetVolumeId()] = true
	}
	return ids
}

func countCalls(e *harness.Env, method, prefix string) int {
	n := 0
	for _, c := range e.Sim.Calls() {
		if c.Method == method && strings.HasPrefix(c.Path, "/api/2.0/"+prefix) {
			n++
		}
	}
	return n
}

func TestConcurrentPublishesToOneServerAreCoalesced(t *testing.T) {
	// Sixteen blank drives of one size: without declared UUID serials the
	// attach window would queue them one by one (tests/identity).
	e := harness.Start(t, harness.Options{SerialsOnly: true})
	c := csi.NewControllerClient(e.Conn())
	const n = 16
	vols := make([]*csi.Volume, n)
	for i := range vols {
		vols[i] = create(t, c, fmt.Sprintf("pvc-concurrent-%d", i), gib, nil)
	}
	e.Sim.ResetCalls()
	var wg sync.WaitGroup
	channels := make([]string, n)
	errs := make([]error, n)
	for i := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
				VolumeId: vols[i].GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
			errs[i] = err
			channels[i] = resp.GetPublishContext()[params.PublishDevChannel]
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if channels[i] == "" || seen[channels[i]] {
			t.Fatalf("publish %d: dev_channel %q empty or reused (%v)", i, channels[i], channels)
		}
		seen[channels[i]] = true
	}
	srv, ok := e.Sim.Server(e.Server)
	if !ok {
		t.Fatal("local server missing")
	}
	attached := 0
	for _, v := range vols {
		for _, d := range srv.Drives {
			if d.Drive == v.GetVolumeId() {
				attached++
			}
		}
	}
	if attached != n {
		t.Fatalf("%d of %d drives on the server's drives list", attached, n)
	}
	puts := countCalls(e, "PUT", "servers/")
	t.Logf("%d publishes took %d server PUTs", n, puts)
	if puts >= n {
		t.Fatalf("%d server PUTs for %d publishes: not coalesced", puts, n)
	}
	// Publishing again is idempotent: same channel.
	resp, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
		VolumeId: vols[3].GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
	if err != nil || resp.GetPublishContext()[params.PublishDevChannel] != channels[3] {
		t.Fatalf("republish: %v, context %v, want channel %s", err, resp.GetPublishContext(), channels[3])
	}
}

func TestInjected503sConvergeWithoutDuplicatesOrLeaks(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/drives/", Status: 503, Rate: 0.5})
	e.Sim.InjectFault(cloudsim.Fault{Method: "PUT", PathPrefix: "/servers/", Status: 503, Rate: 0.5})
	e.Sim.InjectFault(cloudsim.Fault{Method: "DELETE", Status: 503, Rate: 0.5})
	e.Sim.InjectFault(cloudsim.Fault{Method: "GET", Status: 503, Rate: 0.2})
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("pvc-flaky-%d", i)
		var vol *csi.Volume
		retry(t, "create", func() error {
			resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: name,
				CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
			vol = resp.GetVolume()
			return err
		})
		if got := drivesNamed(e, name); len(got) != 1 {
			t.Fatalf("%s: %d drives after create, want 1", name, len(got))
		}
		retry(t, "publish", func() error {
			_, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
				VolumeId: vol.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
			return err
		})
		retry(t, "unpublish", func() error {
			_, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), NodeId: e.Server})
			return err
		})
		retry(t, "delete", func() error {
			_, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
			return err
		})
	}
	e.Sim.ClearFaults()
	if n := len(e.Sim.Drives()); n != 0 {
		t.Fatalf("%d drives leaked: %+v", n, e.Sim.Drives())
	}
	if srv, _ := e.Sim.Server(e.Server); len(srv.Drives) != 0 {
		t.Fatalf("server still lists drives: %+v", srv.Drives)
	}
}

func TestRestoreAndCloneIntoLargerVolumes(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-source", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: src.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	restored := create(t, c, "pvc-restored", 3*gib, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}})
	cloned := create(t, c, "pvc-cloned", 2*gib, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.GetVolumeId()}}})
	for _, tc := range []struct {
		vol  *csi.Volume
		want int64
	}{{restored, 3 * gib}, {cloned, 2 * gib}} {
		d, ok := e.Sim.Drive(tc.vol.GetVolumeId())
		if !ok || d.Size < tc.want || tc.vol.GetCapacityBytes() < tc.want {
			t.Fatalf("volume %s: drive %+v, reported %d, want >= %d", tc.vol.GetVolumeId(), d, tc.vol.GetCapacityBytes(), tc.want)
		}
		if tc.vol.GetContentSource() == nil {
			t.Fatalf("volume %s: content source not reported", tc.vol.GetVolumeId())
		}
	}
	// A restore smaller than the snapshot's drive is refused.
	_, err = c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-too-small",
		CapacityRange: &csi.CapacityRange{RequiredBytes: gib / 2, LimitBytes: gib / 2}, VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}}})
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("restore below the source size: %v, want OutOfRange", err)
	}
}

func TestExpandAndDeleteWhileAttachedAreRefused(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-attached", gib, nil)
	if _, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap}); err != nil {
		t.Fatal(err)
	}
	_, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: mountCap})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("expand while attached to a running server: %v, want FailedPrecondition", err)
	}
	_, err = c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete while attached: %v, want FailedPrecondition", err)
	}
	if _, ok := e.Sim.Drive(vol.GetVolumeId()); !ok {
		t.Fatal("the attached drive was deleted")
	}
	if _, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), NodeId: e.Server}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: mountCap})
	if err != nil || resp.GetCapacityBytes() < 2*gib || !resp.GetNodeExpansionRequired() {
		t.Fatalf("expand after detach: %v %v", resp, err)
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); d.Size < 2*gib {
		t.Fatalf("drive is %d bytes after expansion", d.Size)
	}
}

func TestIdempotentAcrossDriverRestart(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	first := create(t, c, "pvc-restart", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-restart", SourceVolumeId: first.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
		VolumeId: first.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
	if err != nil {
		t.Fatal(err)
	}
	e.StopDriver()
	e.StartDriver()
	c = csi.NewControllerClient(e.Conn())
	again := create(t, c, "pvc-restart", gib, nil)
	if again.GetVolumeId() != first.GetVolumeId() || len(drivesNamed(e, "pvc-restart")) != 1 {
		t.Fatalf("after restart: volume %s, first %s, %d drives", again.GetVolumeId(), first.GetVolumeId(), len(drivesNamed(e, "pvc-restart")))
	}
	snap2, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-restart", SourceVolumeId: first.GetVolumeId()})
	if err != nil || snap2.GetSnapshot().GetSnapshotId() != snap.GetSnapshot().GetSnapshotId() {
		t.Fatalf("snapshot after restart: %v %v", snap2, err)
	}
	pub2, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
		VolumeId: first.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
	if err != nil || pub2.GetPublishContext()[params.PublishDevChannel] != pub.GetPublishContext()[params.PublishDevChannel] {
		t.Fatalf("publish after restart: %v %v, want %v", pub2, err, pub.GetPublishContext())
	}
	// The same name with an incompatible size is refused.
	_, err = c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-restart",
		CapacityRange: &csi.CapacityRange{RequiredBytes: 5 * gib, LimitBytes: 5 * gib}, VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same name, other size: %v, want AlreadyExists", err)
	}
}

func TestUnavailableDriveFailsCreateAndReportsHealth(t *testing.T) {
	slow := harness.DefaultDelays
	slow.Create = 2 * time.Second
	e := harness.Start(t, harness.Options{Delays: &slow})
	c := csi.NewControllerClient(e.Conn())
	errc := make(chan error, 1)
	go func() {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-broken",
			CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
		errc <- err
	}()
	var id string
	for id == "" {
		if ds := drivesNamed(e, "pvc-broken"); len(ds) == 1 {
			id = ds[0].UUID
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.Sim.SetDriveStatus(id, cloudsigma.StatusUnavailable); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || status.Code(err) == codes.OK {
		t.Fatal("CreateVolume succeeded on an unavailable drive")
	}
	h, err := c.ControllerGetVolumeHealth(ctxT(t), &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 1 ||
		h.GetVolumeHealth().GetHealthStatuses()[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE {
		t.Fatalf("health of an unavailable drive: %v %v", h, err)
	}
}

// ControllerListVolumeHealth lists only the unhealthy volumes of this
// cluster, paged, and refuses a token it did not issue.
func TestListVolumeHealthPagesUnhealthyVolumes(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	list := func(max int32, token string) (*csi.ControllerListVolumeHealthResponse, error) {
		return c.ControllerListVolumeHealth(ctxT(t), &csi.ControllerListVolumeHealthRequest{MaxEntries: max, StartingToken: token})
	}
	if resp, err := list(0, ""); err != nil || len(resp.GetEntries()) != 0 {
		t.Fatalf("before any volume: %v %v", resp, err)
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, create(t, c, fmt.Sprintf("pvc-health-%d", i), gib, nil).GetVolumeId())
	}
	if resp, err := list(0, ""); err != nil || len(resp.GetEntries()) != 0 {
		t.Fatalf("healthy volumes listed: %v %v", resp, err)
	}
	for _, id := range ids[1:] {
		if err := e.Sim.SetDriveStatus(id, cloudsigma.StatusUnavailable); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		resp, err := list(1, token)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if len(resp.GetEntries()) != 1 {
			t.Fatalf("page %d: %d entries, want 1", page, len(resp.GetEntries()))
		}
		h := resp.GetEntries()[0]
		if len(h.GetHealthStatuses()) != 1 || h.GetHealthStatuses()[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE {
			t.Fatalf("entry %v", h)
		}
		seen[h.GetVolumeId()] = true
		if token = resp.GetNextToken(); token == "" {
			break
		}
	}
	if len(seen) != 2 || !seen[ids[1]] || !seen[ids[2]] {
		t.Fatalf("listed %v, want the unavailable %v", seen, ids[1:])
	}
	if _, err := list(0, "7"); status.Code(err) != codes.Aborted {
		t.Fatalf("token past the end: %v, want Aborted", err)
	}
	if _, err := list(-1, ""); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative max_entries: %v, want InvalidArgument", err)
	}
}
