package controller_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

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

// A clone inherits its source's meta in CloudSigma; the clone must still be
// recorded as its own volume: listed, and found again by a retried
// CreateVolume instead of AlreadyExists.
func TestClonesAreIdempotentAndListed(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-clone-src", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-clone-src", SourceVolumeId: src.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  *csi.VolumeContentSource
		key  string
	}{
		{"pvc-from-volume", volumeSource(src.GetVolumeId()), "volume:" + src.GetVolumeId()},
		{"pvc-from-snapshot", snapshotSource(snap.GetSnapshot().GetSnapshotId()), "snapshot:" + snap.GetSnapshot().GetSnapshotId()},
	} {
		first := create(t, c, tc.name, 2*gib, tc.src)
		again, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{
			Name: tc.name, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib},
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: tc.src,
		})
		if err != nil || again.GetVolume().GetVolumeId() != first.GetVolumeId() {
			t.Fatalf("%s: retried CreateVolume: %v, %v; want volume %s", tc.name, again, err, first.GetVolumeId())
		}
		if n := len(drivesNamed(e, tc.name)); n != 1 {
			t.Fatalf("%s: %d drives", tc.name, n)
		}
		d, _ := e.Sim.Drive(first.GetVolumeId())
		if d.Meta["csi_source"] != tc.key {
			t.Fatalf("%s: drive meta %v, want csi_source %q", tc.name, d.Meta, tc.key)
		}
		if !listVolumeIDs(t, c)[first.GetVolumeId()] {
			t.Fatalf("%s: clone %s missing from ListVolumes", tc.name, first.GetVolumeId())
		}
	}
}

// The first CreateVolumes of a fresh cluster run concurrently; they must
// not create the cluster tag twice, or ListVolumes misses volumes.
func TestConcurrentFirstCreatesShareOneClusterTag(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: fmt.Sprintf("pvc-tag-%d", i),
				VolumeCapabilities: []*csi.VolumeCapability{mountCap},
				Parameters:         map[string]string{"tags": "team-a"}})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			ids[i] = resp.GetVolume().GetVolumeId()
		}()
	}
	wg.Wait()
	listed := listVolumeIDs(t, c)
	for _, id := range ids {
		if !listed[id] {
			t.Fatalf("volume %s missing from ListVolumes (%d listed)", id, len(listed))
		}
	}
}

// CloudSigma deletes a drive's snapshots with the drive. The spec: a plugin
// that cannot delete a volume without affecting its snapshots MUST leave the
// volume alone and answer FAILED_PRECONDITION.
// A snapshot restores at the size its drive had when it was taken, not the
// drive's current size.
func TestRestoreSizeIsTheSizeWhenTaken(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-grows", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-small", SourceVolumeId: vol.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListSnapshots(ctxT(t), &csi.ListSnapshotsRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()})
	if err != nil || len(list.GetEntries()) != 1 || list.GetEntries()[0].GetSnapshot().GetSizeBytes() != gib {
		t.Fatalf("snapshot size after the drive grew: %v %v, want %d", list, err, gib)
	}
	resp, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-restore-2g",
		CapacityRange:       &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: 2 * gib},
		VolumeCapabilities:  []*csi.VolumeCapability{mountCap},
		VolumeContentSource: snapshotSource(snap.GetSnapshot().GetSnapshotId())})
	if err != nil || resp.GetVolume().GetCapacityBytes() != 2*gib {
		t.Fatalf("restore a 1 GiB snapshot into 2 GiB: %v %v", resp, err)
	}
}

// Snapshot limits from capabilities (90 per drive) are "not enough
// resources" for CreateSnapshot, not a permission problem.
func TestSnapshotLimitIsResourceExhausted(t *testing.T) {
	e := harness.Start(t, harness.Options{Delays: &harness.DefaultDelays})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-many-snaps", gib, nil)
	for i := 0; ; i++ {
		_, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: fmt.Sprintf("snap-%d", i), SourceVolumeId: vol.GetVolumeId()})
		if err == nil {
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || i != 90 {
			t.Fatalf("snapshot %d: %v, want ResourceExhausted at the 91st", i, err)
		}
		break
	}
}

// A requisite topology that excludes the driver's location cannot be met:
// RESOURCE_EXHAUSTED, and no drive is created.
func TestTopologyElsewhereIsRefused(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-elsewhere",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{{
			Segments: map[string]string{"topology.csi.cloudsigma.com/location": "other"}}}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("requisite elsewhere: %v, want ResourceExhausted", err)
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
}

// Cloud errors keep their meaning over gRPC, carry the API request id, and
// never the credentials.
func TestCloudErrorsAreMappedWithoutCredentials(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	var logs bytes.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&logs)
	t.Cleanup(func() { klog.SetOutput(os.Stderr); klog.LogToStderr(true) })
	secret := base64.StdEncoding.EncodeToString([]byte(harness.Username + ":" + harness.Password))
	for i, tc := range []struct {
		status int
		want   codes.Code
	}{
		{401, codes.Unauthenticated},
		{402, codes.ResourceExhausted},
		{403, codes.PermissionDenied},
		{404, codes.NotFound},
	} {
		e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/drives/", Status: tc.status})
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: fmt.Sprintf("pvc-err-%d", i),
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
		e.Sim.ClearFaults()
		if status.Code(err) != tc.want {
			t.Errorf("API %d: %v, want %s", tc.status, err, tc.want)
		}
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "request id") {
			t.Errorf("API %d: message %q lacks the request id", tc.status, msg)
		}
		if strings.Contains(msg, harness.Password) || strings.Contains(msg, secret) {
			t.Errorf("API %d: message leaks credentials: %q", tc.status, msg)
		}
	}
	klog.Flush()
	if out := logs.String(); strings.Contains(out, harness.Password) || strings.Contains(out, secret) {
		t.Fatal("logs leak credentials")
	}
	if !strings.Contains(logs.String(), "request id") {
		t.Fatal("failure logs lack the API request id")
	}
}

// Sources that do not exist are NotFound; a size below the source's is
// OutOfRange.
func TestMissingSourcesAreNotFound(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	for _, src := range []*csi.VolumeContentSource{
		volumeSource("1b6e5b3c-0000-4000-8000-000000000000"),
		snapshotSource("1b6e5b3c-0000-4000-8000-000000000000"),
	} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-missing-src",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: src})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("source %v: %v, want NotFound", src, err)
		}
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
}

// local_nvme drives are ephemeral: CloudSigma neither clones nor snapshots
// them. That is an unsupported source (InvalidArgument), not a permission
// problem.
func TestLocalNVMeSourcesAreInvalid(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	local, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-local",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: map[string]string{"storageType": "local_nvme"}})
	if err != nil {
		t.Fatal(err)
	}
	dssd := create(t, c, "pvc-dssd", gib, nil)
	for _, tc := range []struct {
		params map[string]string
		src    *csi.VolumeContentSource
	}{
		{nil, volumeSource(local.GetVolume().GetVolumeId())},
		{map[string]string{"storageType": "local_nvme"}, volumeSource(dssd.GetVolumeId())},
	} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-clone-local",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: tc.params, VolumeContentSource: tc.src})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("clone %v with %v: %v, want InvalidArgument", tc.src, tc.params, err)
		}
	}
	_, err = c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-local", SourceVolumeId: local.GetVolume().GetVolumeId()})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("snapshot of local_nvme: %v, want InvalidArgument", err)
	}
}

// A snapshot being taken is an operation on its volume: deleting the volume
// meanwhile is refused with Aborted rather than racing the snapshot.
func TestDeleteVolumeDuringCreateSnapshotIsAborted(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-snap-race", gib, nil)
	e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/snapshots/", Latency: time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-race", SourceVolumeId: vol.GetVolumeId()})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	_, err := c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("delete during snapshot: %v, want Aborted", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Sim.Drive(vol.GetVolumeId()); !ok {
		t.Fatal("volume deleted under its snapshot")
	}
}

// ControllerExpandVolume: capabilities the volume cannot serve are
// InvalidArgument; a smaller size is a no-op that reports the current size;
// block volumes need no node expansion.
func TestExpandVolumeCapabilitiesAndShrink(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-expand", 2*gib, nil)
	multi := &csi.VolumeCapability{AccessType: mountCap.AccessType,
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER}}
	_, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}, VolumeCapability: multi})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("expand with MULTI_NODE_MULTI_WRITER: %v, want InvalidArgument", err)
	}
	resp, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapability: mountCap})
	if err != nil || resp.GetCapacityBytes() != 2*gib {
		t.Fatalf("shrink: %v %v, want OK with the current size", resp, err)
	}
	resp, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{LimitBytes: 5 * gib}, VolumeCapability: mountCap})
	if err != nil || resp.GetCapacityBytes() != 2*gib {
		t.Fatalf("only a limit the drive meets: %v %v, want OK with the current size", resp, err)
	}
	if _, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{LimitBytes: gib}, VolumeCapability: mountCap}); status.Code(err) != codes.OutOfRange {
		t.Fatalf("a limit below the drive's size: %v, want OutOfRange", err)
	}
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: mountCap.AccessMode}
	resp, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}, VolumeCapability: block})
	if err != nil || resp.GetCapacityBytes() < 3*gib || resp.GetNodeExpansionRequired() {
		t.Fatalf("block expand: %v %v", resp, err)
	}
	_, err = c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: "1b6e5b3c-0000-4000-8000-000000000000",
		CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("expand a missing volume: %v, want NotFound", err)
	}
}

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

func TestPublishErrors(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	other := e.Sim.CreateServer("other", true)
	vol := create(t, c, "pvc-pub", gib, nil)
	missing := "1b6e5b3c-0000-4000-8000-000000000000"
	pub := func(vol, node string) (*csi.ControllerPublishVolumeResponse, error) {
		return c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: node, VolumeCapability: mountCap})
	}
	if _, err := pub(missing, e.Server); status.Code(err) != codes.NotFound {
		t.Fatalf("missing volume: %v", err)
	}
	if _, err := pub(vol.GetVolumeId(), missing); status.Code(err) != codes.NotFound {
		t.Fatalf("missing node: %v", err)
	}
	first, err := pub(vol.GetVolumeId(), e.Server)
	if err != nil || first.GetPublishContext()[params.PublishDriveUUID] != vol.GetVolumeId() || first.GetPublishContext()[params.PublishDevChannel] == "" {
		t.Fatalf("publish: %v %v", first, err)
	}
	_, err = pub(vol.GetVolumeId(), other)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), e.Server) {
		t.Fatalf("publish to a second node: %v, want FailedPrecondition naming %s", err, e.Server)
	}
	for _, req := range []*csi.ControllerUnpublishVolumeRequest{
		{VolumeId: vol.GetVolumeId(), NodeId: missing},
		{VolumeId: missing, NodeId: e.Server},
		{VolumeId: vol.GetVolumeId(), NodeId: other},
		{VolumeId: vol.GetVolumeId(), NodeId: e.Server},
		{VolumeId: vol.GetVolumeId(), NodeId: e.Server},
	} {
		if _, err := c.ControllerUnpublishVolume(ctxT(t), req); err != nil {
			t.Fatalf("unpublish %v: %v", req, err)
		}
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); len(d.MountedOn) != 0 {
		t.Fatalf("still mounted on %v after unpublish returned", d.MountedOn)
	}
}
