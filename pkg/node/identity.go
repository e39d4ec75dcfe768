package node

import (
	"context"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// find locates the drive's device for stage. A finder that takes content
// evidence gets the digest the controller read (publish_context), which a
// guest without usable serials needs (docs/identity.md).
func (s *Service) find(ctx context.Context, volID string, wantSize int64, pc map[string]string) (string, error) {
	if ef, ok := s.cfg.Finder.(device.EvidenceFinder); ok {
		return ef.FindEvidence(ctx, volID, device.Evidence{Size: wantSize, Digest: pc[params.PublishContentDigest]})
	}
	return s.cfg.Finder.Find(ctx, volID, wantSize)
}
