package driver

import (
	"context"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// version is stamped at build time with -ldflags "-X ...driver.version=".
var version = "dev"

// Version is the driver's build version.
func Version() string { return version }

type identity struct {
	csi.UnimplementedIdentityServer
	probe *probeCache
}

func (i *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: params.DriverName, VendorVersion: version}, nil
}

// GetPluginCapabilities is the same for every instance, whichever services it
// serves: the spec asks that all instances of a version "SHALL return the
// same set of capabilities, regardless of ... which RPCs an instance is
// serving". A node-only instance therefore reports CONTROLLER_SERVICE too.
func (i *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	caps := []*csi.PluginCapability{
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}},
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}}},
		// Offline: CloudSigma refuses to resize a drive mounted on a
		// running server.
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			Type: csi.PluginCapability_VolumeExpansion_OFFLINE}}},
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (i *identity) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	ready := true
	if i.probe != nil {
		if err := i.probe.checkNow(ctx); err != nil {
			klog.ErrorS(err, "Probe: CloudSigma API not reachable")
			ready = false
		}
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(ready)}, nil
}

// probeCache remembers the last API check for ttl, so liveness probes every
// few seconds cost one API call a minute at most. A failure is remembered
// for failTTL only: one blip must not fail every probe for a minute and get
// the container restarted.
type probeCache struct {
	ttl, failTTL time.Duration
	check        func(context.Context) error

	mu     sync.Mutex
	at     time.Time
	result error
}

func (p *probeCache) checkNow(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ttl := p.ttl
	if p.result != nil {
		ttl = min(p.ttl, p.failTTL)
	}
	if !p.at.IsZero() && time.Since(p.at) < ttl {
		return p.result
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.result = p.check(ctx)
	p.at = time.Now()
	return p.result
}
