// Package params names the strings the controller and node plugins agree on:
// publish_context keys, the topology key and StorageClass parameters. Both
// sides import it so the contract between them lives in one file.
package params

import (
	"slices"
	"strings"
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
