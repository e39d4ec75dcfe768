package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// Stage's decisions on a fake node (fakes_test.go): no root needed. The
// same rules on real devices are in *_root_test.go.

const (
	volB = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	snro = csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
)

func (n *fakeNode) stage(volID, staging string, vc *csi.VolumeCapability) error {
	_, err := n.srv.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
		VolumeId: volID, StagingTargetPath: staging, VolumeCapability: vc, PublishContext: pubCtx(volID, 0)})
	return err
}

// A mount already at the staging path is the finished stage only when it
// is this volume's device, with the filesystem and mode requested.
func TestAlreadyStaged(t *testing.T) {
	ext4rw, ext4ro := mountCap("ext4", snw), mountCap("ext4", snro)
	for _, tc := range []struct {
		name    string
		setup   func(n *fakeNode, staging string, a, b uint64)
		vc      *csi.VolumeCapability
		code    codes.Code
		growths int // Resize calls: a writable stage grows to its device
	}{
		{"this device, same way: done", func(n *fakeNode, s string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, ext4rw, codes.OK, 1},
		{"this device, read-only: done, not grown", func(n *fakeNode, s string, a, _ uint64) { n.mountFS(s, a, "ext4", true) }, ext4ro, codes.OK, 0},
		{"another volume's device", func(n *fakeNode, s string, _, b uint64) { n.mountFS(s, b, "ext4", false) }, ext4rw, codes.AlreadyExists, 0},
		{"another filesystem", func(n *fakeNode, s string, a, _ uint64) { n.mountFS(s, a, "xfs", false) }, ext4rw, codes.AlreadyExists, 0},
		{"read-only mount, read-write requested", func(n *fakeNode, s string, a, _ uint64) { n.mountFS(s, a, "ext4", true) }, ext4rw, codes.AlreadyExists, 0},
		{"read-write mount, read-only requested", func(n *fakeNode, s string, a, _ uint64) { n.mountFS(s, a, "ext4", false) }, ext4ro, codes.AlreadyExists, 0},
		{"staged as raw block", func(n *fakeNode, s string, _, _ uint64) {
			if err := n.stage(volA, s, blockCap(snw)); err != nil {
				n.t.Fatal(err)
			}
		}, ext4rw, codes.AlreadyExists, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			_, a := n.disk(volA, "vdb", 16, 64*mib)
			_, b := n.disk(volB, "vdc", 32, 64*mib)
			staging := n.path("staging")
			tc.setup(n, staging, a, b)
			before := len(n.mounter.MountPoints)

			wantCode(t, n.stage(volA, staging, tc.vc), tc.code)
			if got := n.mountsMade(); len(got) != 0 {
				t.Errorf("mounted %v over an existing stage", got)
			}
			if got := n.unmounts(); len(got) != 0 || len(n.mounter.MountPoints) != before {
				t.Errorf("unmounted %v", got)
			}
			if got := n.tools.mkfsRuns(); len(got) != 0 {
				t.Errorf("ran %v", got)
			}
			if len(n.grown) != tc.growths {
				t.Errorf("grown %v, want %d resize(s)", n.grown, tc.growths)
			}
		})
	}
}

// Only a blank device is formatted; a device holding anything else is
// refused before any mkfs or mount.
func TestStageFormatsOnlyBlankDevices(t *testing.T) {
	for _, tc := range []struct {
		name, existing string
		vc             *csi.VolumeCapability
		code           codes.Code
		mkfs           string // the mkfs run, if any
		opts           string // an option the staging mount must have
	}{
		{"blank, ext4", "", mountCap("ext4", snw), codes.OK, "mkfs.ext4", "defaults"},
		{"blank, xfs", "", mountCap("xfs", snw), codes.OK, "mkfs.xfs", "nouuid"},
		{"xfs already, xfs requested", "xfs", mountCap("xfs", snw), codes.OK, "", "nouuid"},
		{"xfs already, ext4 requested", "xfs", mountCap("ext4", snw), codes.FailedPrecondition, "", ""},
		{"swap", "swap", mountCap("ext4", snw), codes.FailedPrecondition, "", ""},
		{"partition table", "partitions", mountCap("ext4", snw), codes.FailedPrecondition, "", ""},
		{"blank, read-only mode", "", mountCap("ext4", snro), codes.FailedPrecondition, "", ""},
	} {
		for _, zeros := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, zero check %t", tc.name, zeros), func(t *testing.T) {
				n := newFakeNode(t)
				n.zeros = zeros
				dev, _ := n.disk(volA, "vdb", 16, 64*mib)
				n.tools.formats[dev] = tc.existing
				staging := n.path("staging")

				wantCode(t, n.stage(volA, staging, tc.vc), tc.code)
				// A device known blank by its zeros needs no blkid; any
				// other is blkid's to name.
				if ran := n.tools.runs("blkid"); zeros && tc.mkfs != "" && len(ran) != 0 {
					t.Errorf("blkid ran on a device the zero check found blank: %v", ran)
				} else if (!zeros || tc.existing != "") && tc.vc.GetMount() != nil && len(ran) == 0 {
					t.Errorf("blkid never ran on a device the zero check could not call blank")
				}
				mkfs := n.tools.mkfsRuns()
				switch {
				case tc.mkfs == "" && len(mkfs) != 0:
					t.Fatalf("ran %v on a device holding %q", mkfs, tc.existing)
				case tc.mkfs != "" && (len(mkfs) != 1 || !strings.HasPrefix(mkfs[0], tc.mkfs+" ") || !strings.HasSuffix(mkfs[0], " "+dev)):
					t.Fatalf("mkfs runs %v, want one %s of %s", mkfs, tc.mkfs, dev)
				}
				if tc.code != codes.OK {
					if got := n.mountsMade(); len(got) != 0 {
						t.Errorf("mounted %v after refusing", got)
					}
					return
				}
				fsType := tc.vc.GetMount().GetFsType()
				if got, want := n.mountsMade(), []string{dev + " " + staging + " " + fsType}; !slices.Equal(got, want) {
					t.Errorf("mounts %v, want %v", got, want)
				}
				if opts := n.optsAt(staging); !slices.Contains(opts, tc.opts) || slices.Contains(opts, "ro") {
					t.Errorf("staging mount options %v, want %s and not ro", opts, tc.opts)
				}
				// A filesystem just made fills its device: only an existing
				// one is grown.
				var want []string
				if tc.existing != "" {
					want = []string{dev + " " + staging}
				}
				if !slices.Equal(n.grown, want) {
					t.Errorf("grown %v, want %v", n.grown, want)
				}
			})
		}
	}
}

// A staging mount whose device is gone (stat fails with ENOTCONN) is
// cleared, and the stage proceeds on the volume's device.
func TestStageClearsCorruptedMount(t *testing.T) {
	n := newFakeNode(t)
	dev, _ := n.disk(volA, "vdb", 16, 64*mib)
	staging := n.path("staging")
	n.mountFS(staging, unix.Mkdev(8, 99), "ext4", false) // an unplugged disk's number
	n.corrupt(staging)

	if err := n.stage(volA, staging, mountCap("ext4", snw)); err != nil {
		t.Fatal(err)
	}
	if got := n.unmounts(); !slices.Equal(got, []string{staging}) {
		t.Errorf("unmounted %v, want the corrupted staging mount", got)
	}
	if got, want := n.mountsMade(), []string{dev + " " + staging + " ext4"}; !slices.Equal(got, want) {
		t.Errorf("mounts %v, want %v", got, want)
	}
}

// Raw block stages record their mode; a filesystem on the device, another
// device, or another mode at the staging path is a conflict.
func TestStageBlock(t *testing.T) {
	n := newFakeNode(t)
	_, a := n.disk(volA, "vdb", 16, 64*mib)
	_, b := n.disk(volB, "vdc", 32, 64*mib)

	staging := n.path("block")
	if err := n.stage(volA, staging, blockCap(snw)); err != nil {
		t.Fatal(err)
	}
	if err := n.stage(volA, staging, blockCap(snw)); err != nil {
		t.Fatalf("repeated raw block stage: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(staging, blockMarker)); err != nil || strings.TrimSpace(string(b)) != "read-write" {
		t.Fatalf("marker = %q, %v", b, err)
	}
	wantCode(t, n.stage(volA, staging, blockCap(snro)), codes.AlreadyExists)

	fsStaged, otherStaged := n.path("fs"), n.path("other")
	n.mountFS(fsStaged, a, "ext4", false)
	n.mountFS(otherStaged, b, "ext4", false)
	wantCode(t, n.stage(volA, fsStaged, blockCap(snw)), codes.AlreadyExists)
	wantCode(t, n.stage(volA, otherStaged, blockCap(snw)), codes.AlreadyExists)
	if got := n.mountsMade(); len(got) != 0 {
		t.Errorf("a raw block stage mounted %v", got)
	}
}

// A failed mkfs says what to do: a missing mkfs names the package to
// install (FailedPrecondition), options from the StorageClass that mkfs
// refuses are InvalidArgument; nothing is mounted either way.
func TestStageFormatErrorsNameTheFix(t *testing.T) {
	for _, tc := range []struct {
		name, fsType, formatOptions string
		missing, rejects            string
		code                        codes.Code
		errHas                      []string
	}{
		{"ext4, mkfs missing", "ext4", "", "mkfs.ext4", "", codes.FailedPrecondition, []string{"mkfs.ext4", "e2fsprogs"}},
		{"ext3, mkfs missing", "ext3", "", "mkfs.ext3", "", codes.FailedPrecondition, []string{"mkfs.ext3", "e2fsprogs"}},
		{"xfs, mkfs missing", "xfs", "-K", "mkfs.xfs", "", codes.FailedPrecondition, []string{"mkfs.xfs", "xfsprogs"}},
		{"ext4, option refused", "ext4", "-b 65536", "", "65536", codes.InvalidArgument, []string{"-b 65536", "formatOptions", `invalid argument "65536"`}},
		{"xfs, option refused", "xfs", "-m reflink=1", "", "reflink=1", codes.InvalidArgument, []string{"-m reflink=1", "formatOptions"}},
		{"ext4, mkfs fails without options", "ext4", "", "", "-F", codes.Internal, []string{"mkfs.ext4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			dev, _ := n.disk(volA, "vdb", 16, 64*mib)
			n.tools.formats[dev] = ""
			n.tools.missing = map[string]bool{tc.missing: true}
			n.tools.rejects = tc.rejects
			staging := n.path("staging")
			_, err := n.srv.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
				VolumeId: volA, StagingTargetPath: staging, VolumeCapability: mountCap(tc.fsType, snw),
				PublishContext: pubCtx(volA, 0), VolumeContext: map[string]string{params.ParamFormatOptions: tc.formatOptions}})
			wantCode(t, err, tc.code)
			for _, s := range tc.errHas {
				if !strings.Contains(fmt.Sprint(err), s) {
					t.Errorf("error %v does not name %s", err, s)
				}
			}
			if got := n.mountsMade(); len(got) != 0 {
				t.Errorf("mounted %v after a failed mkfs", got)
			}
		})
	}
}
