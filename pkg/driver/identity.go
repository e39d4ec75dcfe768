package driver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// version is stamped at build time with -ldflags "-X ...driver.version=".
var version = "dev"

// Version is the driver's build version.
func Version() string { return version }

type identity struct {
	csi.UnimplementedIdentityServer
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

// Probe reports the process's health only: the livenessprobe sidecar turns
// it into the container's liveness, and an outage of the CloudSigma API must
// not restart a controller that will serve again the moment the API returns.
// The API's reachability is the Reachability watcher's business.
func (i *identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}
