package params

import (
	"errors"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestCheckAccessMode(t *testing.T) {
	block := &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	mount := &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	const (
		ok = iota
		unsupported
		unknown
	)
	for _, tc := range []struct {
		mode   csi.VolumeCapability_AccessMode_Mode
		access any
		want   int
	}{
		{csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, mount, ok},
		{csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, block, ok},
		{csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, block, ok},
		{csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, mount, unsupported},
		{csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, block, unsupported},
		{csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER, mount, unsupported},
		{csi.VolumeCapability_AccessMode_UNKNOWN, mount, unknown},
	} {
		vc := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: tc.mode}}
		if b, isBlock := tc.access.(*csi.VolumeCapability_Block); isBlock {
			vc.AccessType = b
		} else {
			vc.AccessType = tc.access.(*csi.VolumeCapability_Mount)
		}
		err := CheckAccessMode(vc)
		got := ok
		switch {
		case errors.Is(err, ErrUnknownAccessMode):
			got = unknown
		case err != nil:
			got = unsupported
		}
		if got != tc.want {
			t.Errorf("%s with %T: %v, want class %d", tc.mode, tc.access, err, tc.want)
		}
	}
}

func TestFSType(t *testing.T) {
	for in, want := range map[string]bool{"": true, "ext4": true, " XFS ": true, "ext3": true, "btrfs": false} {
		if _, ok := FSType(in); ok != want {
			t.Errorf("FSType(%q) supported = %t, want %t", in, ok, want)
		}
	}
}
