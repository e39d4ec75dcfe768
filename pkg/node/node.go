// Package node is the CSI node service: it finds an attached drive's block
// device (pkg/device), formats it only when it is blank, mounts it, and
// bind-mounts it into pods. Every RPC is idempotent and stateless across
// restarts: the mount table is the only record.
package node

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	mount "k8s.io/mount-utils"
	"k8s.io/utils/exec"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// DefaultMaxVolumesPerNode is the attach limit reported when Config leaves
// it zero: the controller's default virtio channel capacity minus one for the
// boot drive, so the scheduler never places more than the allocator can attach.
var DefaultMaxVolumesPerNode = int64(virtio.DefaultChannels.MaxVolumes())

// Resizer grows a mounted filesystem to its device (mount-utils ResizeFs).
type Resizer interface {
	Resize(devicePath, deviceMountPath string) (bool, error)
}

// Config is what the node service needs; only NodeID and Finder are required.
type Config struct {
	NodeID            string // the server UUID (from the server context)
	Location          string // value of params.TopologyKey for this node
	MaxVolumesPerNode int64  // 0 means DefaultMaxVolumesPerNode
	Finder            device.Finder
	// Mounter formats and mounts; nil means mkfs and DirectMounter over
	// the host's mount(8).
	Mounter *mount.SafeFormatAndMount
	// Blank tells a device that holds nothing blkid could name; nil means
	// device.Blank. Any other answer sends stage to blkid.
	Blank func(dev string) (bool, error)
	// Resizer grows filesystems; nil means resize2fs / xfs_growfs.
	Resizer Resizer
	// Mounts is the mount table; nil means DefaultMountInfo.
	Mounts MountTable
	// Stat stats paths; nil means device.Probe.
	Stat Stater
	// SysDir is the sysfs root, where a mount's device is looked up to
	// tell a live one from an unplugged one; "" means device.DefaultSysDir.
	SysDir string
}

// Service is the CSI node service (csi.NodeServer).
type Service struct {
	csi.UnimplementedNodeServer
	cfg   Config
	locks inflight.Locks
}

// New checks cfg and fills in the defaults.
func New(cfg Config) (*Service, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("node: a node ID is required")
	}
	if cfg.Finder == nil {
		return nil, errors.New("node: a device finder is required")
	}
	if cfg.MaxVolumesPerNode < 0 {
		return nil, errors.New("node: max volumes per node must not be negative")
	}
	if cfg.MaxVolumesPerNode == 0 {
		cfg.MaxVolumesPerNode = DefaultMaxVolumesPerNode
	}
	if cfg.Mounter == nil {
		cfg.Mounter = mount.NewSafeFormatAndMount(DirectMounter{mount.New("")}, exec.New())
	}
	if cfg.Blank == nil {
		cfg.Blank = device.Blank
	}
	if cfg.Resizer == nil {
		cfg.Resizer = mount.NewResizeFs(exec.New())
	}
	if cfg.Mounts == nil {
		cfg.Mounts = DefaultMountInfo
	}
	if cfg.Stat == nil {
		cfg.Stat = StatFunc(device.Probe)
	}
	if cfg.SysDir == "" {
		cfg.SysDir = device.DefaultSysDir
	}
	return &Service{cfg: cfg}, nil
}

// NodeGetInfo implements csi.NodeServer.
func (s *Service) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	resp := &csi.NodeGetInfoResponse{
		NodeId:            s.cfg.NodeID,
		MaxVolumesPerNode: s.cfg.MaxVolumesPerNode,
	}
	if s.cfg.Location != "" {
		resp.AccessibleTopology = &csi.Topology{Segments: map[string]string{params.TopologyKey: s.cfg.Location}}
	}
	return resp, nil
}

// nodeCapabilities: VOLUME_CONDITION is gone from spec v1.13; its successor
// is the alpha NodeGetVolumeHealth RPC (GET_VOLUME_HEALTH).
var nodeCapabilities = []csi.NodeServiceCapability_RPC_Type{
	csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
	csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
}

// NodeGetCapabilities implements csi.NodeServer.
func (s *Service) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, c := range nodeCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}
