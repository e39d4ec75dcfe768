package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// Retired drives. CloudSigma deletes a drive's snapshots with the drive,
// while Kubernetes users expect a VolumeSnapshot to outlive its PVC. So
// DeleteVolume of a drive that has snapshots retires it instead (as ceph-csi
// moves an RBD image with dependants to its trash): one update renames it
// (csi-retired-<name>), records when in its meta and swaps the cluster tag
// for the retired tag, which hides it from ListVolumes and from name
// lookups. Every CSI call then treats it as deleted, but restores from its
// snapshots keep working. DeleteSnapshot deletes the drive when its last
// snapshot goes, and a periodic sweep does the same for any retired drive a
// crash left behind. A retired drive is billed for its size until then.

const retiredPrefix = "csi-retired-"

// retiredTag marks this cluster's retired drives.
func (c *Service) retiredTag() string { return retiredPrefix + c.clusterID }

// volume reads a drive that stands for a volume: a retired drive is
// NotFound, as the volume it stood for was deleted.
func (c *Service) volume(ctx context.Context, id string) (*cloudsigma.Drive, error) {
	d, err := c.cloud.GetDrive(ctx, id)
	if err != nil {
		return nil, cloudError(err, "reading drive "+id)
	}
	if isRetired(d) {
		return nil, status.Errorf(codes.NotFound, "volume %s was deleted; its drive is kept, retired, until its last snapshot is deleted", id)
	}
	return d, nil
}

// retire turns a drive with snapshots into a retired one, in one update.
func (c *Service) retire(ctx context.Context, d *cloudsigma.Drive) error {
	clusterTag, err := c.tagUUID(ctx, c.clusterTag(), false)
	if err != nil {
		return err
	}
	retiredTag, err := c.tagUUID(ctx, c.retiredTag(), true)
	if err != nil {
		return err
	}
	tags := slices.DeleteFunc(tagRefs(d, []string{retiredTag}), func(t string) bool { return t == clusterTag })
	meta := maps.Clone(d.Meta) // the PVC and PV names stay: they tell an operator what it was
	meta[MetaRetired] = time.Now().UTC().Format(time.RFC3339)
	name := retiredPrefix + d.Name
	if _, err := c.cloud.UpdateDrive(ctx, d, cloudsigma.DriveUpdate{Name: &name, Meta: meta, Tags: tags}); err != nil {
		return cloudError(err, "retiring drive "+d.UUID)
	}
	klog.InfoS("DeleteVolume: drive has snapshots, retired until they are deleted", "drive", d.UUID, "snapshots", len(d.Snapshots), "name", name)
	return nil
}

// removable: a retired drive whose last snapshot is gone, attached nowhere
// and at rest.
func removable(d *cloudsigma.Drive) bool {
	return isRetired(d) && len(d.Snapshots) == 0 && !d.Attached() && !d.InMotion()
}

// deleteIfRetired deletes the drive when it is retired and removable. It is
// best effort: the sweep retries whatever fails here.
func (c *Service) deleteIfRetired(ctx context.Context, id string) {
	d, err := c.cloud.GetDrive(ctx, id)
	if err != nil || !removable(d) || c.ownedElsewhere(d.Meta) {
		return
	}
	if err := c.cloud.DeleteDrive(ctx, id); err != nil && !cloudsigma.IsNotFound(err) {
		klog.ErrorS(err, "Deleting a retired drive after its last snapshot; the sweep will retry", "drive", id)
		return
	}
	klog.InfoS("Deleted a retired drive: its last snapshot is gone", "drive", id)
}

// RetiredReport is what a sweep leaves: retired drives still held by their
// snapshots, and their bytes.
type RetiredReport struct {
	Drives int
	Bytes  int64
}

// SweepRetired deletes every removable retired drive of this cluster and
// reports the rest.
func (c *Service) SweepRetired(ctx context.Context) (RetiredReport, error) {
	var r RetiredReport
	tag, err := c.tagUUID(ctx, c.retiredTag(), false)
	if err != nil || tag == "" {
		return r, err
	}
	drives, err := c.cloud.ListDrives(ctx, cloudsigma.Filter{Tag: []string{tag}})
	if err != nil {
		return r, cloudError(err, "listing retired drives")
	}
	var failed error
	for i := range drives {
		d := &drives[i]
		if c.ownedElsewhere(d.Meta) || !isRetired(d) {
			continue
		}
		if removable(d) {
			if err := c.cloud.DeleteDrive(ctx, d.UUID); err != nil && !cloudsigma.IsNotFound(err) {
				failed = fmt.Errorf("deleting retired drive %s: %w", d.UUID, err)
			} else {
				klog.InfoS("Sweep deleted a retired drive without snapshots", "drive", d.UUID)
				continue
			}
		}
		r.Drives++
		r.Bytes += int64(d.Size)
	}
	return r, failed
}

// RunSweeper sweeps every interval until ctx ends, and hands each report to
// report (metrics).
func (c *Service) RunSweeper(ctx context.Context, interval time.Duration, report func(RetiredReport)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r, err := c.SweepRetired(ctx)
		if err != nil {
			klog.ErrorS(err, "Sweeping retired drives")
		} else if report != nil {
			report(r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
