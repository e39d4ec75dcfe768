// Package controller is the CSI controller service: CSI calls in,
// CloudSigma API calls out. It validates each request, guards it against a
// concurrent one on the same object (pkg/inflight), and turns API errors into
// gRPC codes in one table (errors.go). Attaching goes through the per-server
// queue of pkg/attach. What the driver records on a drive, and so which
// drives are this cluster's, is ownership.go.
package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config is what the controller service needs; Cloud and Location are
// required.
type Config struct {
	Cloud     Cloud
	ClusterID string          // recorded on, and tagging, the drives this cluster owns; "default" when empty
	Location  string          // the value of the topology key: every volume lives there
	Channels  virtio.Channels // zero means virtio.DefaultChannels
	Wait      cloudsigma.WaitOptions
	// SerialsOnly: the operator declared that guests show drive UUIDs as
	// disk serials (--drive-identity=uuid-serial), so publish reads no
	// content evidence and opens no attach window (identity.go).
	SerialsOnly bool
	// Window bounds the exclusive attach window; zero means DefaultWindow.
	Window time.Duration
}

// Service is the CSI controller service (csi.ControllerServer).
type Service struct {
	csi.UnimplementedControllerServer
	cloud       Cloud
	queue       *attach.Queue
	reads       *cloudsigma.DriveReads // the polls of concurrent waits, shared
	locks       inflight.Locks
	clusterID   string
	location    string
	wait        cloudsigma.WaitOptions
	content     Content
	serialsOnly bool
	window      window

	mu    sync.Mutex
	caps  *cloudsigma.Capabilities
	tags  tagCache
	tagMu sync.Mutex // one lookup-or-create at a time: no duplicate tags
}

// New checks cfg and fills in the defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Cloud == nil {
		return nil, errors.New("the controller service needs a CloudSigma client")
	}
	if cfg.Location == "" {
		return nil, errors.New("a location (topology value) is required")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "default"
	}
	if cfg.Channels == (virtio.Channels{}) {
		cfg.Channels = virtio.DefaultChannels
	}
	if err := cfg.Channels.Validate(); err != nil {
		return nil, err
	}
	content, ok := cfg.Cloud.(Content)
	if !ok && !cfg.SerialsOnly {
		return nil, errors.New("the controller needs a client that reads drive ranges (content evidence), or SerialsOnly")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	return &Service{
		cloud: cfg.Cloud, queue: attach.NewQueue(cfg.Cloud, cfg.Channels), reads: cloudsigma.NewDriveReads(cfg.Cloud.ListDrives),
		clusterID: cfg.ClusterID, location: cfg.Location, wait: cfg.Wait,
		content: content, serialsOnly: cfg.SerialsOnly, window: window{max: cfg.Window},
	}, nil
}

// lock refuses a second concurrent operation on any of keys (Aborted).
func (c *Service) lock(keys ...inflight.Key) (release func(), err error) {
	release, err = c.locks.Acquire(keys...)
	if err != nil {
		return nil, status.Error(cloudCode(err), err.Error())
	}
	return release, nil
}

func (c *Service) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// capabilities are read once per process: they change rarely and
// CreateVolume needs them every time. A create the API refuses as invalid
// drops them (forgetCapabilities), so changed limits are read again.
func (c *Service) capabilities(ctx context.Context) (*cloudsigma.Capabilities, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caps != nil {
		return c.caps, nil
	}
	caps, err := c.cloud.GetCapabilities(ctx)
	if err != nil {
		return nil, cloudError(err, "reading capabilities")
	}
	c.caps = caps
	return caps, nil
}

// forgetCapabilities makes the next capabilities call read them again.
func (c *Service) forgetCapabilities() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caps = nil
}

func (c *Service) topology() []*csi.Topology {
	return []*csi.Topology{{Segments: map[string]string{params.TopologyKey: c.location}}}
}

// checkTopology fails when the requisite topology excludes our location.
func (c *Service) checkTopology(req *csi.TopologyRequirement) error {
	if len(req.GetRequisite()) == 0 {
		return nil
	}
	for _, t := range req.GetRequisite() {
		if loc, ok := t.GetSegments()[params.TopologyKey]; !ok || loc == c.location {
			return nil
		}
	}
	return status.Errorf(codes.ResourceExhausted, "requisite topology does not include location %q", c.location)
}

func (c *Service) csiVolume(d *cloudsigma.Drive, vc map[string]string, src *csi.VolumeContentSource) *csi.Volume {
	return &csi.Volume{
		VolumeId: d.UUID, CapacityBytes: int64(d.Size), VolumeContext: vc,
		ContentSource: src, AccessibleTopology: c.topology(),
	}
}

func refUUIDs(refs []cloudsigma.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.UUID
	}
	return out
}
