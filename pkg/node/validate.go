package node

import (
	"errors"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

const defaultFSType = "ext4"

// checkCapability validates a volume capability for this node, with the
// controller's access mode rule (params.CheckAccessMode). A mode the driver
// does not serve is refused with unsupported,
// the kind each RPC's error table names for "Exceeds capabilities"
// (FAILED_PRECONDITION for stage and publish, INVALID_ARGUMENT for
// NodeExpandVolume).
func checkCapability(vc *csi.VolumeCapability, unsupported error) error {
	if vc == nil {
		return failf(errInvalid, "volume capability missing")
	}
	if vc.GetBlock() == nil && vc.GetMount() == nil {
		return failf(errInvalid, "volume capability has neither block nor mount access type")
	}
	if err := params.CheckAccessMode(vc); errors.Is(err, params.ErrUnknownAccessMode) {
		return failf(errInvalid, "%v", err)
	} else if err != nil {
		return failf(unsupported, "%v", err)
	}
	return nil
}

// readOnlyMode reports access modes that must never be written.
func readOnlyMode(vc *csi.VolumeCapability) bool {
	switch vc.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true
	}
	return false
}

// fsTypeOf picks the filesystem: the capability, else the StorageClass
// parameter carried in the volume context, else ext4.
func fsTypeOf(vc *csi.VolumeCapability, volumeContext map[string]string) (string, error) {
	fs := vc.GetMount().GetFsType()
	if fs == "" {
		fs = volumeContext[params.ParamFSType]
	}
	if fs == "" {
		return defaultFSType, nil
	}
	fs, ok := params.FSType(fs)
	if !ok {
		return "", failf(errInvalid, "filesystem %q is not supported (%s)", fs, strings.Join(params.FSTypes, ", "))
	}
	return fs, nil
}

// formatOptions are the StorageClass's extra mkfs arguments, checked
// against the allow-list in pkg/params: nothing that names a file or device
// reaches mkfs.
func formatOptions(fsType string, volumeContext map[string]string) ([]string, error) {
	opts, err := params.FormatOptions(fsType, volumeContext[params.ParamFormatOptions])
	if err != nil {
		return nil, failf(errInvalid, "%v", err)
	}
	return opts, nil
}

// driveFromPublishContext checks that a publish_context, when given, is
// about this volume's drive and returns the size the controller saw (0 when
// it did not say). publish_context is OPTIONAL in the spec: without it the
// device is still proven by its serial, only the size check is skipped, and
// a volume that is not attached here is NotFound, as the spec requires.
func driveFromPublishContext(volumeID string, pc map[string]string) (int64, error) {
	if drive := pc[params.PublishDriveUUID]; drive != "" && drive != volumeID {
		return 0, failf(errInvalid, "publish_context names drive %s, not volume %s", drive, volumeID)
	}
	sizeStr := pc[params.PublishDriveSize]
	if sizeStr == "" {
		return 0, nil
	}
	size, err := strconv.ParseInt(sizeStr, 10, 64)
	if err != nil || size < 0 {
		return 0, failf(errInvalid, "publish_context %s=%q is not a size in bytes", params.PublishDriveSize, sizeStr)
	}
	return size, nil
}

// required returns errInvalid naming the first empty field.
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return failf(errInvalid, "%s missing", fields[i])
		}
	}
	return nil
}

// checkCapacityRange refuses a range no volume can satisfy.
func checkCapacityRange(r *csi.CapacityRange) error {
	required, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case required < 0 || limit < 0:
		return failf(errOutOfRange, "capacity must not be negative (required %d, limit %d bytes)", required, limit)
	case limit > 0 && required > limit:
		return failf(errOutOfRange, "required bytes %d exceed limit bytes %d", required, limit)
	}
	return nil
}
