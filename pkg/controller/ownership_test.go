package controller

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The context fingerprint depends on what the node gets back only, not on
// the provisioner's per-claim keys; publish records tell writer modes from
// read-only ones, block from mount and the readonly flag.
func TestContextKeyAndPublishRecord(t *testing.T) {
	a, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs", "csi.storage.k8s.io/pvc/name": "a"})
	b, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs", "csi.storage.k8s.io/pvc/name": "b", "tags": "x"})
	c, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "ext4"})
	if a.contextKey() != b.contextKey() || a.contextKey() == c.contextKey() {
		t.Fatalf("context keys: %s %s %s", a.contextKey(), b.contextKey(), c.contextKey())
	}
	mode := func(m csi.VolumeCapability_AccessMode_Mode, block bool) *csi.VolumeCapability {
		vc := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: m},
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}
		if block {
			vc.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}
		return vc
	}
	base := publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, false), false)
	if got := publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, false), false); got != base {
		t.Fatalf("writer modes differ: %s %s", got, base)
	}
	for _, other := range []string{
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, false), false),
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, true), false),
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, false), true),
	} {
		if other == base {
			t.Fatalf("%s should differ from %s", other, base)
		}
	}
	if err := checkRange(&csi.CapacityRange{RequiredBytes: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative range: %v", err)
	}
}
