package node

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// Publish on a fake node: it bind-mounts only this volume's stage, and
// an existing publish only counts when it is the same.

const snsw = csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER

func (n *fakeNode) publish(volID, staging, target string, vc *csi.VolumeCapability, ro bool) error {
	_, err := n.srv.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: volID, StagingTargetPath: staging, TargetPath: target, VolumeCapability: vc, Readonly: ro})
	return err
}

func TestPublishFilesystem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(n *fakeNode, staging, target string, a, b uint64)
		vc    *csi.VolumeCapability
		ro    bool
		code  codes.Code
		bind  bool // a bind mount of the stage is made at the target
	}{
		{"staged here", func(n *fakeNode, s, _ string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, mountCap("", snw), false, codes.OK, true},
		{"staged here, read-only", func(n *fakeNode, s, _ string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, mountCap("ext4", snw), true, codes.OK, true},
		{"staging holds another volume", func(n *fakeNode, s, _ string, _, b uint64) { n.mountFS(s, b, "ext4", false) }, mountCap("", snw), false, codes.FailedPrecondition, false},
		{"nothing staged", func(n *fakeNode, s, _ string, _, _ uint64) { n.mkdir(s) }, mountCap("", snw), false, codes.FailedPrecondition, false},
		{"staged as xfs, ext4 requested", func(n *fakeNode, s, _ string, a, _ uint64) { n.mountFS(s, a, "xfs", false) }, mountCap("ext4", snw), false, codes.FailedPrecondition, false},
		{"target holds another volume", func(n *fakeNode, s, tg string, a, b uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, b, "ext4", false)
		}, mountCap("", snw), false, codes.AlreadyExists, false},
		{"already published the same way", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, a, "ext4", false)
		}, mountCap("", snw), false, codes.OK, false},
		{"already published read-only", func(n *fakeNode, s, tg string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(tg, a, "ext4", true)
		}, mountCap("", snw), false, codes.AlreadyExists, false},
		{"single writer, published elsewhere", func(n *fakeNode, s, _ string, a, _ uint64) {
			n.mountFS(s, a, "ext4", false)
			n.mountFS(n.path("pods", "other"), a, "ext4", false)
		}, mountCap("", snsw), false, codes.FailedPrecondition, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			devA, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			staging, target := n.path("staging"), n.path("pods", "a", "vol")
			tc.setup(n, staging, target, a, b)

			wantCode(t, n.publish(volA, staging, target, tc.vc, tc.ro), tc.code)
			made := n.mountsMade()
			if !tc.bind {
				if len(made) != 0 {
					t.Errorf("mounted %v", made)
				}
				return
			}
			// The FakeMounter, like the kernel, names the stage's device.
			if want := []string{devA + " " + target + " "}; !slices.Equal(made, want) {
				t.Fatalf("mounts %v, want %v", made, want)
			}
			if opts := n.optsAt(target); !slices.Contains(opts, "bind") || slices.Contains(opts, "ro") != tc.ro {
				t.Errorf("publish options %v, want bind and read-only=%t", opts, tc.ro)
			}
		})
	}
}

func TestPublishBlock(t *testing.T) {
	vc := blockCap(snw)
	for _, tc := range []struct {
		name  string
		setup func(n *fakeNode, staging, target, devA string, a, b uint64)
		vc    *csi.VolumeCapability
		code  codes.Code
		bind  bool
	}{
		{"not published yet", func(*fakeNode, string, string, string, uint64, uint64) {}, vc, codes.OK, true},
		{"already published", func(n *fakeNode, _, tg, devA string, a, _ uint64) { n.mountNode(tg, devA, a, false) }, vc, codes.OK, false},
		{"target holds another device", func(n *fakeNode, _, tg, _ string, _, b uint64) { n.mountNode(tg, n.devs[volB], b, false) }, vc, codes.AlreadyExists, false},
		{"staged as a filesystem", func(n *fakeNode, s, _, _ string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, vc, codes.FailedPrecondition, false},
		{"single writer, published elsewhere", func(n *fakeNode, _, _, devA string, a, _ uint64) {
			n.mountNode(n.path("pods", "other", "dev"), devA, a, false)
		}, blockCap(snsw), codes.FailedPrecondition, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			devA, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			staging, target := n.path("staging"), n.path("pods", "a", "dev")
			tc.setup(n, staging, target, devA, a, b)

			wantCode(t, n.publish(volA, staging, target, tc.vc, false), tc.code)
			made := n.mountsMade()
			if !tc.bind {
				if len(made) != 0 {
					t.Errorf("mounted %v", made)
				}
				return
			}
			if want := []string{devA + " " + target + " "}; !slices.Equal(made, want) {
				t.Fatalf("mounts %v, want %v", made, want)
			}
			if fi, err := os.Stat(target); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("target for a device node: %v, %v; want a file", fi, err)
			}
		})
	}
}
