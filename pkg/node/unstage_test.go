package node

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// Unstage on a fake node: it always succeeds, and unmounts only what is
// this volume's or dead, never another volume's live stage.
func TestUnstage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(n *fakeNode, staging string)
		cleaned bool // the staging mount is unmounted and the path removed
	}{
		{"another volume's live device: left alone", func(n *fakeNode, s string) {
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			n.mountFS(s, b, "ext4", false)
		}, false},
		{"another device, unplugged: cleaned", func(n *fakeNode, s string) {
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			n.mountFS(s, b, "ext4", false)
			n.unplug(volB, b)
		}, true},
		{"this volume's device: cleaned", func(n *fakeNode, s string) {
			n.mountFS(s, n.rdevOf(volA), "ext4", false)
		}, true},
		{"this volume detached, its old mount: cleaned", func(n *fakeNode, s string) {
			a := n.rdevOf(volA)
			n.mountFS(s, a, "ext4", false)
			n.unplug(volA, a)
		}, true},
		{"raw block stage: cleaned", func(n *fakeNode, s string) {
			if err := n.stage(volA, s, blockCap(snw)); err != nil {
				n.t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			n.disk(volA, "vdb", 16, 64*mib)
			staging := n.path("staging")
			tc.setup(n, staging)
			wasMounted := n.mounted(staging)

			if _, err := n.srv.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: volA, StagingTargetPath: staging}); err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(staging)
			if tc.cleaned {
				if !os.IsNotExist(statErr) || n.mounted(staging) {
					t.Errorf("staging path left: stat %v, mounted %t", statErr, n.mounted(staging))
				}
				if wasMounted && !slices.Equal(n.unmounts(), []string{staging}) {
					t.Errorf("unmounted %v, want %s", n.unmounts(), staging)
				}
				return
			}
			if statErr != nil || !n.mounted(staging) || len(n.unmounts()) != 0 {
				t.Errorf("another volume's stage touched: stat %v, unmounted %v", statErr, n.unmounts())
			}
		})
	}
}

// A staging path that never existed is already unstaged.
func TestUnstageMissingPath(t *testing.T) {
	n := newFakeNode(t)
	n.disk(volA, "vdb", 16, 64*mib)
	if _, err := n.srv.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: volA, StagingTargetPath: n.path("never")}); err != nil {
		t.Fatal(err)
	}
	if len(n.unmounts()) != 0 {
		t.Errorf("unmounted %v", n.unmounts())
	}
}
