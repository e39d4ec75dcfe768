package node

import (
	"context"

	"k8s.io/klog/v2"

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

// note tells a finder that remembers file systems what stage mounted on
// the drive's device. Best effort: it only helps a later identification.
func (s *Service) note(volID, dev string) {
	if n, ok := s.cfg.Finder.(device.Noter); ok {
		if err := n.Note(volID, dev); err != nil {
			klog.InfoS("Could not remember the drive's file system", "volume", volID, "device", dev, "err", err)
		}
	}
}
