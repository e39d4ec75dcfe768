package node

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// Stats on a fake node: only a path holding this volume is measured; any
// other path is NotFound, so the CO never gets another disk's usage.
func TestStatsOnlyForThisVolume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(n *fakeNode, path string, a, b uint64)
		code  codes.Code
	}{
		{"this volume's filesystem", func(n *fakeNode, p string, a, _ uint64) { n.mountFS(p, a, "ext4", false) }, codes.OK},
		{"another volume's filesystem", func(n *fakeNode, p string, _, b uint64) { n.mountFS(p, b, "ext4", false) }, codes.NotFound},
		{"a directory with nothing mounted", func(n *fakeNode, p string, _, _ uint64) { n.mkdir(p) }, codes.NotFound},
		{"this volume's device node", func(n *fakeNode, p string, a, _ uint64) { n.mountNode(p, n.devs[volA], a, false) }, codes.OK},
		{"another volume's device node", func(n *fakeNode, p string, _, b uint64) { n.mountNode(p, n.devs[volB], b, false) }, codes.NotFound},
		{"a corrupted mount", func(n *fakeNode, p string, a, _ uint64) {
			n.mountFS(p, a, "ext4", false)
			n.corrupt(p)
		}, codes.FailedPrecondition},
		// Published but its device unplugged: not NotFound (the volume is
		// published there), FailedPrecondition naming the condition.
		{"this volume's filesystem, device gone", func(n *fakeNode, p string, a, _ uint64) {
			n.mountFS(p, a, "ext4", false)
			n.unplug(volA, a)
		}, codes.FailedPrecondition},
		{"this volume's device node, device gone", func(n *fakeNode, p string, a, _ uint64) {
			n.mountNode(p, n.devs[volA], a, false)
			n.unplug(volA, a)
		}, codes.FailedPrecondition},
		{"nothing mounted, device gone", func(n *fakeNode, p string, a, _ uint64) {
			n.mkdir(p)
			n.unplug(volA, a)
		}, codes.NotFound},
		{"a virtual filesystem mounted, device gone", func(n *fakeNode, p string, a, _ uint64) {
			n.mountFS(p, unix.Mkdev(0, 42), "tmpfs", false)
			n.unplug(volA, a)
		}, codes.NotFound},
		{"another live volume's filesystem, this device gone", func(n *fakeNode, p string, a, b uint64) {
			n.mountFS(p, b, "ext4", false)
			n.unplug(volA, a)
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			_, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 32*mib)
			path := n.path("vol")
			tc.setup(n, path, a, b)

			resp, err := n.srv.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: volA, VolumePath: path})
			wantCode(t, err, tc.code)
			if tc.code == codes.FailedPrecondition && strings.Contains(tc.name, "device gone") && !strings.Contains(fmt.Sprint(err), "is gone") {
				t.Errorf("error %v does not say the device is gone", err)
			}
			if err != nil {
				return
			}
			u := resp.GetUsage()
			if len(u) == 0 || u[0].Unit != csi.VolumeUsage_BYTES || u[0].Total <= 0 {
				t.Fatalf("usage %v", u)
			}
			if n.nodes[path].Block && (len(u) != 1 || u[0].Total != 64*mib) {
				t.Errorf("raw block usage %v, want the device's %d bytes", u, 64*mib)
			}
			if !n.nodes[path].Block && (len(u) != 2 || u[1].Unit != csi.VolumeUsage_INODES) {
				t.Errorf("filesystem usage %v, want bytes and inodes", u)
			}
		})
	}
}
