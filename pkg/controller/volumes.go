package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ValidateVolumeCapabilities confirms the capabilities a drive can serve.
func (c *Service) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	if err := malformedCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if _, err := parseParams(req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	// The storage type is fixed at creation: parameters or a volume context
	// that name another one do not describe this volume.
	for _, m := range []map[string]string{req.GetParameters(), req.GetVolumeContext()} {
		if want := strings.TrimSpace(m[params.ParamStorageType]); want != "" && d.StorageType != "" && d.StorageType != want {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf(
				"volume %s is storage type %q, not %q", d.UUID, d.StorageType, want)}, nil
		}
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	if multiNode(req.GetVolumeCapabilities()...) && !d.AllowMultimount {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf(
			"volume %s does not allow multimount: it serves one server at a time", d.UUID)}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// ControllerGetVolume reports a drive with the servers it is attached to.
func (c *Service) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	d, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: c.csiVolume(d, nil, nil),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{PublishedNodeIds: refUUIDs(d.MountedOn)},
	}, nil
}

// ControllerGetVolumeHealth reports a drive CloudSigma marks unavailable as
// inaccessible (CSI 1.13 replaced VolumeCondition with volume health).
func (c *Service) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	d, err := c.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: driveHealth(d)}, nil
}

// ControllerListVolumeHealth lists this cluster's drives with an adverse
// condition (the spec asks to omit healthy ones). The token is an offset
// into that list, which is read whole: few drives are ever unhealthy.
func (c *Service) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	p, tag, err := c.listStart(ctx, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	var unhealthy []*csi.VolumeHealth
	if tag != "" {
		drives, err := c.cloud.ListDrives(ctx, cloudsigma.Filter{Tag: []string{tag}})
		if err != nil {
			return nil, cloudError(err, "listing drives")
		}
		for i := range drives {
			if h := driveHealth(&drives[i]); len(h.HealthStatuses) > 0 {
				unhealthy = append(unhealthy, h)
			}
		}
	}
	if err := p.check(len(unhealthy), "unhealthy volumes"); err != nil {
		return nil, err
	}
	entries := cut(p, unhealthy)
	return &csi.ControllerListVolumeHealthResponse{Entries: entries, NextToken: p.nextToken(len(entries), len(unhealthy))}, nil
}

func driveHealth(d *cloudsigma.Drive) *csi.VolumeHealth {
	h := &csi.VolumeHealth{VolumeId: d.UUID}
	if d.Status == cloudsigma.StatusUnavailable {
		h.HealthStatuses = []*csi.VolumeHealth_VolumeHealthEntry{{
			Status: csi.VolumeHealthErrorType_INACCESSIBLE, Reason: "DriveUnavailable",
			Message: "CloudSigma reports the drive as unavailable",
		}}
	}
	return h
}

// ListVolumes pages through this cluster's drives (those with the cluster
// tag) with the API's own offset, so a token is an offset into the list.
func (c *Service) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	p, tag, err := c.listStart(ctx, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	if tag == "" { // no volume was ever created
		if err := p.check(0, "volumes"); err != nil {
			return nil, err
		}
		return &csi.ListVolumesResponse{}, nil
	}
	filter := cloudsigma.Filter{Tag: []string{tag}}
	var drives []cloudsigma.Drive
	total := 0
	if p.whole() {
		drives, err = c.cloud.ListDrives(ctx, filter)
		total = len(drives)
	} else {
		var pg cloudsigma.Page[cloudsigma.Drive]
		pg, err = c.cloud.ListDrivesPage(ctx, filter, p.offset, p.limit())
		drives, total = pg.Items, pg.Total
	}
	if err != nil {
		return nil, cloudError(err, "listing drives")
	}
	if err := p.check(total, "volumes"); err != nil {
		return nil, err
	}
	resp := &csi.ListVolumesResponse{}
	for i := range drives {
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{
			Volume: c.csiVolume(&drives[i], nil, nil),
			Status: &csi.ListVolumesResponse_VolumeStatus{PublishedNodeIds: refUUIDs(drives[i].MountedOn)},
		})
	}
	resp.NextToken = p.nextToken(len(drives), total)
	return resp, nil
}
