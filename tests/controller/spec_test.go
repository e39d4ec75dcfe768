package controller_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// Conformance to the error tables and MUSTs of the CSI spec (v1.13) that
// csi-sanity does not check.

type stubNode struct{ csi.UnimplementedNodeServer }

var blockCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: mountCap.AccessMode,
}

func withMode(vc *csi.VolumeCapability, m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessType: vc.AccessType, AccessMode: &csi.VolumeCapability_AccessMode{Mode: m}}
}

func pluginCaps(t *testing.T, e *harness.Env) []string {
	t.Helper()
	resp, err := csi.NewIdentityClient(e.Conn()).GetPluginCapabilities(ctxT(t), &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range resp.GetCapabilities() {
		out = append(out, c.String())
	}
	slices.Sort(out)
	return out
}

// "All instances of the same version ... SHALL return the same set of
// capabilities, regardless of ... which RPCs an instance is serving."
func TestPluginCapabilitiesAreTheSameOnEveryInstance(t *testing.T) {
	ctrl := pluginCaps(t, harness.Start(t, harness.Options{}))
	node := pluginCaps(t, harness.Start(t, harness.Options{NoController: true,
		Node: func(string) (csi.NodeServer, error) { return &stubNode{}, nil }}))
	if !slices.Equal(ctrl, node) {
		t.Fatalf("controller instance reports %v, node-only instance %v", ctrl, node)
	}
	want := (&csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
		Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}}).String()
	if !slices.Contains(node, want) {
		t.Fatalf("CONTROLLER_SERVICE missing from %v", node)
	}
}

// Capacity "MUST NOT be negative": an invalid field, InvalidArgument; a
// well-formed range the plugin cannot serve stays OutOfRange. Expansion
// needs a capacity: "At least one of these fields MUST be specified."
func TestCapacityRangeErrors(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	for _, tc := range []struct {
		r    *csi.CapacityRange
		want codes.Code
	}{
		{&csi.CapacityRange{RequiredBytes: -1}, codes.InvalidArgument},
		{&csi.CapacityRange{LimitBytes: -1}, codes.InvalidArgument},
		{&csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: gib}, codes.OutOfRange},
		{&csi.CapacityRange{RequiredBytes: 1 << 50}, codes.OutOfRange},
	} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-range",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, CapacityRange: tc.r})
		if status.Code(err) != tc.want {
			t.Errorf("CreateVolume %v: %v, want %s", tc.r, err, tc.want)
		}
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
	vol := create(t, c, "pvc-range-expand", gib, nil)
	for _, tc := range []struct {
		r    *csi.CapacityRange
		want codes.Code
	}{
		{&csi.CapacityRange{}, codes.InvalidArgument},
		{&csi.CapacityRange{RequiredBytes: -gib}, codes.InvalidArgument},
		{&csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: -1}, codes.InvalidArgument},
		{&csi.CapacityRange{RequiredBytes: 3 * gib, LimitBytes: 2 * gib}, codes.OutOfRange},
	} {
		_, err := c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(), CapacityRange: tc.r})
		if status.Code(err) != tc.want {
			t.Errorf("ControllerExpandVolume %v: %v, want %s", tc.r, err, tc.want)
		}
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); d.Size != gib {
		t.Fatalf("drive resized to %d by a refused request", d.Size)
	}
}

// The same name with parameters that give another volume context is
// ALREADY_EXISTS: a volume_id "SHALL always report the same
// volume_context". The same parameters stay idempotent.
func TestCreateVolumeSameNameOtherParametersAlreadyExists(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	req := func(fs string) *csi.CreateVolumeRequest {
		return &csi.CreateVolumeRequest{Name: "pvc-params", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
			CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, Parameters: map[string]string{params.ParamFSType: fs}}
	}
	first, err := c.CreateVolume(ctxT(t), req("ext4"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateVolume(ctxT(t), req("ext4"))
	if err != nil || again.GetVolume().GetVolumeId() != first.GetVolume().GetVolumeId() {
		t.Fatalf("same request again: %v %v", again, err)
	}
	if _, err := c.CreateVolume(ctxT(t), req("xfs")); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same name, other fsType: %v, want AlreadyExists", err)
	}
	if n := len(drivesNamed(e, "pvc-params")); n != 1 {
		t.Fatalf("%d drives named pvc-params", n)
	}
}

// A content source without its id is a missing required field.
func TestContentSourceWithoutIDIsInvalid(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	for _, src := range []*csi.VolumeContentSource{volumeSource(""), snapshotSource(""), {}} {
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-src-noid",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: src})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("source %v: %v, want InvalidArgument", src, err)
		}
	}
	if len(e.Sim.Drives()) != 0 {
		t.Fatal("a drive was created")
	}
}

// "Volume published but is incompatible | 6 ALREADY_EXISTS": a second
// publish at the same node with another capability or readonly flag, also
// after a driver restart. A compatible one is OK with the same context.
// readonly=true cannot be honoured without PUBLISH_READONLY.
func TestPublishIncompatibleAtSameNodeIsAlreadyExists(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-pub-compat", gib, nil)
	pub := func(vc *csi.VolumeCapability, ro bool) (*csi.ControllerPublishVolumeResponse, error) {
		return c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
			VolumeId: vol.GetVolumeId(), NodeId: e.Server, VolumeCapability: vc, Readonly: ro})
	}
	if _, err := pub(mountCap, true); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("readonly publish: %v, want InvalidArgument", err)
	}
	first, err := pub(mountCap, false)
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for _, tc := range []struct {
			vc *csi.VolumeCapability
			ro bool
		}{
			{mountCap, true},
			{blockCap, false},
			{withMode(mountCap, csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), false},
		} {
			if _, err := pub(tc.vc, tc.ro); status.Code(err) != codes.AlreadyExists {
				t.Fatalf("publish again as %v readonly=%t: %v, want AlreadyExists", tc.vc, tc.ro, err)
			}
		}
		for _, vc := range []*csi.VolumeCapability{mountCap, withMode(mountCap, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)} {
			again, err := pub(vc, false)
			if err != nil || again.GetPublishContext()[params.PublishDevChannel] != first.GetPublishContext()[params.PublishDevChannel] {
				t.Fatalf("compatible publish as %v: %v %v, first %v", vc, again, err, first)
			}
		}
	}
	check()
	e.StopDriver()
	e.StartDriver()
	c = csi.NewControllerClient(e.Conn())
	check()
	if _, err := c.ControllerUnpublishVolume(ctxT(t), &csi.ControllerUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), NodeId: e.Server}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub(blockCap, false); err != nil {
		t.Fatalf("publish as block after unpublish: %v", err)
	}
}

// ValidateVolumeCapabilities: a capability without its REQUIRED access mode
// or access type is InvalidArgument; confirmed only when every capability
// (and the storage type named) fits the volume.
func TestValidateVolumeCapabilities(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-validate", gib, nil)
	validate := func(caps []*csi.VolumeCapability, p, vc map[string]string) (*csi.ValidateVolumeCapabilitiesResponse, error) {
		return c.ValidateVolumeCapabilities(ctxT(t), &csi.ValidateVolumeCapabilitiesRequest{
			VolumeId: vol.GetVolumeId(), VolumeCapabilities: caps, Parameters: p, VolumeContext: vc})
	}
	for _, vc := range []*csi.VolumeCapability{
		{AccessType: mountCap.AccessType},
		{AccessMode: mountCap.AccessMode},
	} {
		if _, err := validate([]*csi.VolumeCapability{vc}, nil, nil); status.Code(err) != codes.InvalidArgument {
			t.Errorf("capability %v: %v, want InvalidArgument", vc, err)
		}
	}
	multi := withMode(mountCap, csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	for _, tc := range []struct {
		caps      []*csi.VolumeCapability
		p, vc     map[string]string
		confirmed bool
	}{
		{[]*csi.VolumeCapability{mountCap, blockCap}, nil, vol.GetVolumeContext(), true},
		{[]*csi.VolumeCapability{mountCap, multi}, nil, nil, false},
		{[]*csi.VolumeCapability{mountCap}, map[string]string{"storageType": "ssd"}, nil, false},
		{[]*csi.VolumeCapability{mountCap}, nil, map[string]string{"storageType": "ssd"}, false},
		{[]*csi.VolumeCapability{mountCap}, map[string]string{"storageType": "dssd"}, nil, true},
	} {
		resp, err := validate(tc.caps, tc.p, tc.vc)
		if err != nil || (resp.GetConfirmed() != nil) != tc.confirmed || (!tc.confirmed && resp.GetMessage() == "") {
			t.Errorf("validate %v params %v context %v: %v %v, want confirmed=%t", tc.caps, tc.p, tc.vc, resp, err, tc.confirmed)
		}
	}
}

// "Max volumes attached | 8 RESOURCE_EXHAUSTED".
func TestPublishBeyondMaxVolumesIsResourceExhausted(t *testing.T) {
	// Blank drives of one size: SerialsOnly, or the attach window queues them.
	e := harness.Start(t, harness.Options{Channels: virtio.Channels{Controllers: 1, Units: 3}, SerialsOnly: true})
	c := csi.NewControllerClient(e.Conn())
	for i := 0; i < 3; i++ {
		vol := create(t, c, fmt.Sprintf("pvc-max-%d", i), gib, nil)
		_, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
			VolumeId: vol.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
		if i < 2 && err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i == 2 && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("publish beyond the limit: %v, want ResourceExhausted", err)
		}
	}
}

// The publish record is best effort: a drive whose meta cannot be written
// right now (busy, 503) still gets attached.
func TestPublishWhenTheRecordCannotBeWritten(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-pub-norecord", gib, nil)
	e.Sim.InjectFault(cloudsim.Fault{Method: "PUT", PathPrefix: "/drives/", Status: 503})
	defer e.Sim.ClearFaults()
	resp, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), NodeId: e.Server, VolumeCapability: mountCap})
	if err != nil {
		t.Fatalf("publish with drive PUTs failing: %v", err)
	}
	if resp.GetPublishContext()[params.PublishDriveUUID] != vol.GetVolumeId() {
		t.Fatalf("publish context %v", resp.GetPublishContext())
	}
	srv, err := e.NewClient().GetServer(ctxT(t), e.Server)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(srv.Drives, func(d cloudsigma.ServerDrive) bool { return d.Drive.UUID == vol.GetVolumeId() }) {
		t.Fatalf("drive %s not in the server's drives %+v", vol.GetVolumeId(), srv.Drives)
	}
}

// A CreateVolume retried after its source is gone still answers OK with
// the volume made by the first call (the provisioner retries after lost
// responses; users delete snapshots once restored).
func TestRetriedRestoreAfterTheSnapshotIsDeleted(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-gone-src", gib, nil)
	snap, err := c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{Name: "snap-gone", SourceVolumeId: src.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	from := snapshotSource(snap.GetSnapshot().GetSnapshotId())
	first := create(t, c, "pvc-restored", 2*gib, from)
	if _, err := c.DeleteSnapshot(ctxT(t), &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	again := create(t, c, "pvc-restored", 2*gib, from)
	if again.GetVolumeId() != first.GetVolumeId() {
		t.Fatalf("retry gave drive %s, first call %s", again.GetVolumeId(), first.GetVolumeId())
	}
	_, err = c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-restored-new",
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapabilities: []*csi.VolumeCapability{mountCap}, VolumeContentSource: from})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("a new volume from the deleted snapshot: %v, want NotFound", err)
	}
}
