package controller_test

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// formatOptions outside the allow-list are refused at CreateVolume, before a
// drive exists, with a message naming the option; allowed ones pass.
func TestFormatOptionsCheckedAtCreate(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	xfs := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: mountCap.GetAccessMode(),
	}
	for _, tc := range []struct {
		opts string
		vc   *csi.VolumeCapability
		code codes.Code
	}{
		{"-d etc", mountCap, codes.InvalidArgument},
		{"-J device=dev/loop0", mountCap, codes.InvalidArgument},
		{"-l logdev=dev/loop0", xfs, codes.InvalidArgument},
		{"-p proto", xfs, codes.InvalidArgument},
		{"-b 4096 -m 1", mountCap, codes.OK},
		{"-m crc=1 -i size=512", xfs, codes.OK},
	} {
		name := "pvc-fmt-" + strings.NewReplacer(" ", "", "=", "", "/", "").Replace(tc.opts)
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: name,
			Parameters:         map[string]string{params.ParamFormatOptions: tc.opts},
			VolumeCapabilities: []*csi.VolumeCapability{tc.vc}})
		if status.Code(err) != tc.code {
			t.Errorf("formatOptions %q: %v, want %s", tc.opts, err, tc.code)
		}
		if tc.code != codes.OK && len(drivesNamed(e, name)) != 0 {
			t.Errorf("formatOptions %q: a drive was created before the refusal", tc.opts)
		}
	}
}
