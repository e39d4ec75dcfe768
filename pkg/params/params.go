// Package params names the strings the controller and node plugins agree on:
// publish_context keys, the topology key and StorageClass parameters. Both
// sides import it so the contract between them lives in one file.
package params

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
