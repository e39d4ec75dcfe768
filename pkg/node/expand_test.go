package node

import (
	"context"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// Expand on a fake node: it grows only this volume's filesystem, through a
// writable mount, and only once the device has grown.
func TestExpandDecisions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(n *fakeNode, staging, path string, a, b uint64)
		rng    *csi.CapacityRange
		code   codes.Code
		growAt string // "path", "staging" or "" (not grown)
	}{
		{"read-write publish", func(n *fakeNode, _, p string, a, _ uint64) { n.mountFS(p, a, "ext4", false) }, nil, codes.OK, "path"},
		{"read-only publish: through the stage", func(n *fakeNode, s, p string, a, _ uint64) {
			n.mountFS(s, a, "xfs", false)
			n.mountFS(p, a, "xfs", true)
		}, nil, codes.OK, "staging"},
		{"read-only publish, read-only stage", func(n *fakeNode, s, p string, a, _ uint64) {
			n.mountFS(s, a, "xfs", true)
			n.mountFS(p, a, "xfs", true)
		}, nil, codes.FailedPrecondition, ""},
		{"another volume's filesystem", func(n *fakeNode, _, p string, _, b uint64) { n.mountFS(p, b, "ext4", false) }, nil, codes.NotFound, ""},
		{"nothing mounted", func(n *fakeNode, _, p string, _, _ uint64) { n.mkdir(p) }, nil, codes.NotFound, ""},
		{"device not grown yet", func(n *fakeNode, _, p string, a, _ uint64) { n.mountFS(p, a, "ext4", false) },
			&csi.CapacityRange{RequiredBytes: 128 * mib}, codes.Unavailable, ""},
		{"device beyond the limit", func(n *fakeNode, _, p string, a, _ uint64) { n.mountFS(p, a, "ext4", false) },
			&csi.CapacityRange{LimitBytes: 32 * mib}, codes.OutOfRange, ""},
		{"this volume's device node", func(n *fakeNode, _, p string, a, _ uint64) { n.mountNode(p, n.devs[volA], a, false) }, nil, codes.OK, ""},
		{"another volume's device node", func(n *fakeNode, _, p string, _, b uint64) { n.mountNode(p, n.devs[volB], b, false) }, nil, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			devA, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			staging, path := n.path("staging"), n.path("pods", "a", "vol")
			tc.setup(n, staging, path, a, b)

			resp, err := n.srv.NodeExpandVolume(context.Background(), &csi.NodeExpandVolumeRequest{
				VolumeId: volA, VolumePath: path, StagingTargetPath: staging, CapacityRange: tc.rng})
			wantCode(t, err, tc.code)
			if err == nil && resp.CapacityBytes != 64*mib {
				t.Errorf("capacity %d, want %d", resp.CapacityBytes, 64*mib)
			}
			var want []string
			switch tc.growAt {
			case "path":
				want = []string{devA + " " + path}
			case "staging":
				want = []string{devA + " " + staging}
			}
			if !slices.Equal(n.grown, want) {
				t.Errorf("grown %v, want %v", n.grown, want)
			}
		})
	}
}
