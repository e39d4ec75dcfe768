// Package params is what the controller and node plugins agree on:
// publish_context keys, the topology key, StorageClass parameters, the
// supported filesystems and access modes. Both sides import it so the
// contract between them lives in one file.
package params

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

const (
	// DriverName is the CSI plugin name.
	DriverName = "csi.cloudsigma.com"

	// TopologyKey carries the CloudSigma location (zrh, fra, ...).
	TopologyKey = "topology.csi.cloudsigma.com/location"

	// publish_context keys, set by ControllerPublishVolume, read by NodeStage.
	PublishDriveUUID  = "driveUUID"  // full drive UUID
	PublishDevChannel = "devChannel" // "controller:unit" on the server
	PublishDriveSize  = "driveSize"  // drive size in bytes at attach time

	// StorageClass parameters.
	ParamStorageType   = "storageType"
	ParamTags          = "tags"                      // comma separated extra drive tags
	ParamFSType        = "csi.storage.k8s.io/fstype" // ext4 (default) or xfs
	ParamFormatOptions = "formatOptions"             // extra mkfs arguments, space separated
)

// FSTypes are the filesystems the driver formats, mounts and grows. ext4 is
// the default; ext3 is accepted for existing images.
var FSTypes = []string{"ext4", "xfs", "ext3"}

// FSType normalizes a requested filesystem name ("XFS " is xfs) and reports
// whether the driver supports it. An empty name is supported: the default.
func FSType(name string) (string, bool) {
	fs := strings.ToLower(strings.TrimSpace(name))
	return fs, fs == "" || slices.Contains(FSTypes, fs)
}

// ErrUnknownAccessMode: the capability names no access mode this spec
// version knows (a malformed request rather than an unsupported one).
var ErrUnknownAccessMode = errors.New("access mode missing or unknown")

// CheckAccessMode says why a capability's access mode cannot be served, or
// nil. A drive attaches to one server at a time; only a raw block volume may
// be MULTI_NODE_MULTI_WRITER (a multimount drive attached to several
// servers, the application coordinating the writers): ext4 and xfs are not
// cluster filesystems. The controller and the node both apply this rule.
func CheckAccessMode(vc *csi.VolumeCapability) error {
	switch mode := vc.GetAccessMode().GetMode(); mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return nil
	case csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:
		if vc.GetBlock() != nil {
			return nil
		}
		return fmt.Errorf("access mode %s needs a raw block volume (volumeMode: Block): ext4 and xfs are not cluster filesystems", mode)
	case csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER:
		return fmt.Errorf("access mode %s is not supported: a CloudSigma drive attaches to one server, or to several as a raw block volume (MULTI_NODE_MULTI_WRITER)", mode)
	default:
		return fmt.Errorf("%w (%s)", ErrUnknownAccessMode, mode)
	}
}
