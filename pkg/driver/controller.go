package driver

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// controller is the CSI controller service: CSI calls in, CloudSigma API
// calls out.
type controller struct {
	csi.UnimplementedControllerServer
	cloud     Cloud
	queue     *attach.Queue
	locks     *inFlight
	clusterID string
	location  string
	wait      cloudsigma.WaitOptions

	mu       sync.Mutex
	caps     *cloudsigma.Capabilities
	capsAt   time.Time
	tagUUIDs map[string]string // tag name -> uuid, tags are never renamed by us
	tagMu    sync.Mutex        // one lookup-or-create at a time: no duplicate tags
}

func newController(cloud Cloud, channels virtio.Channels, clusterID, location string, wait cloudsigma.WaitOptions) *controller {
	return &controller{
		cloud: cloud, queue: attach.NewQueue(cloud, channels), locks: newInFlight(),
		clusterID: clusterID, location: location, wait: wait, tagUUIDs: map[string]string{},
	}
}

func (c *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
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

// capabilities are cached for a minute: they change rarely and CreateVolume
// needs them every time.
func (c *controller) capabilities(ctx context.Context) (*cloudsigma.Capabilities, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caps != nil && time.Since(c.capsAt) < time.Minute {
		return c.caps, nil
	}
	caps, err := c.cloud.GetCapabilities(ctx)
	if err != nil {
		return nil, cloudError(err, "reading capabilities")
	}
	c.caps, c.capsAt = caps, time.Now()
	return caps, nil
}

func (c *controller) topology() []*csi.Topology {
	return []*csi.Topology{{Segments: map[string]string{params.TopologyKey: c.location}}}
}

// checkTopology fails when the requisite topology excludes our location.
func (c *controller) checkTopology(req *csi.TopologyRequirement) error {
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

// clusterTag is the tag every drive of this cluster carries, so ListVolumes
// asks the API for our drives only.
func (c *controller) clusterTag() string { return "csi-cluster-" + c.clusterID }

// tagUUID finds or creates a tag by name.
func (c *controller) tagUUID(ctx context.Context, name string, create bool) (string, error) {
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	c.mu.Lock()
	id, ok := c.tagUUIDs[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	tags, err := c.cloud.ListTags(ctx, cloudsigma.Filter{Name: []string{name}})
	if err != nil {
		return "", cloudError(err, "listing tags")
	}
	switch {
	case len(tags) > 0:
		id = tags[0].UUID
	case !create:
		return "", nil
	default:
		t, err := c.cloud.CreateTag(ctx, name)
		if err != nil {
			return "", cloudError(err, "creating tag "+name)
		}
		id = t.UUID
	}
	c.mu.Lock()
	c.tagUUIDs[name] = id
	c.mu.Unlock()
	return id, nil
}

// ownMeta is the meta a drive of this cluster carries.
func (c *controller) ownMeta(name string, p volumeParams, source string) map[string]string {
	m := map[string]string{metaDriver: params.DriverName, metaCluster: c.clusterID, metaName: name, metaSource: source,
		metaContext: p.contextKey()}
	for k, v := range map[string]string{metaPVCName: p.pvcName, metaPVCNamespace: p.pvcNamespace, metaPVName: p.pvName} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// recorded: the drive's meta was written for the volume named name. A clone
// fresh from the API carries its source's meta (or none) instead.
func recorded(d *cloudsigma.Drive, name string) bool {
	return d.Meta[metaDriver] == params.DriverName && d.Meta[metaName] == name
}

// isOurs: the drive named name was created by this cluster, or is a clone
// this driver started whose meta was not yet written (clone actions take no
// meta, the copy keeps its source's; the name alone marks it until
// finishVolume records the rest).
func (c *controller) isOurs(d *cloudsigma.Drive, name string) bool {
	if !recorded(d, name) {
		return true
	}
	return d.Meta[metaCluster] == c.clusterID
}

// withMeta is a drive's meta with this driver's keys replaced by meta (an
// update replaces the whole map; a clone's inherited keys must not stay).
func withMeta(d *cloudsigma.Drive, meta map[string]string) map[string]string {
	out := maps.Clone(d.Meta)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range []string{metaSource, metaContext, metaPublished, metaPVCName, metaPVCNamespace, metaPVName} {
		delete(out, k)
	}
	maps.Copy(out, meta)
	return out
}

func (c *controller) csiVolume(d *cloudsigma.Drive, vc map[string]string, src *csi.VolumeContentSource) *csi.Volume {
	return &csi.Volume{
		VolumeId: d.UUID, CapacityBytes: int64(d.Size), VolumeContext: vc,
		ContentSource: src, AccessibleTopology: c.topology(),
	}
}
