package controller

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The ownership record: the meta the driver writes on the drives and
// snapshots it creates. It says which cluster owns an object, which CSI
// request it stands for, and what the request asked, so the driver finds its
// volumes again after a restart, answers a repeated request with the same
// volume, and never changes or deletes what another cluster owns. Every rule
// that reads or writes the record lives in this file. CloudSigma limits meta
// keys to 32 characters and does not enforce string values.
const (
	MetaDriver       = "csi_driver"  // params.DriverName: the object is this driver's
	MetaCluster      = "csi_cluster" // --cluster-id of the owning cluster
	MetaName         = "csi_name"    // the CSI volume name the drive stands for
	MetaSource       = "csi_source"  // "", "snapshot:<uuid>" or "volume:<uuid>"
	MetaSize         = "csi_size"    // on snapshots: the drive's size when taken
	MetaContext      = "csi_context" // fingerprint of the volume context
	MetaPublished    = "csi_publish" // node and capability of the last publish (older drivers; now in the server's meta)
	MetaRetired      = "csi_retired" // when DeleteVolume retired a drive that has snapshots
	MetaPVCName      = "pvc_name"
	MetaPVCNamespace = "pvc_namespace"
	MetaPVName       = "pv_name"
)

// ownerOf is the cluster named by an object's ownership record, "" when it
// carries none of this driver's (a static PV's drive, the alpha driver's
// volumes, a drive made by hand).
func ownerOf(meta map[string]string) string {
	if meta[MetaDriver] != params.DriverName {
		return ""
	}
	return meta[MetaCluster]
}

// checkOwner refuses to act on an object whose record names another
// cluster: several clusters may share one account, and a static PV (or a
// typo) naming another cluster's drive must not change or delete it. It
// runs before any change. Objects without a record stay usable.
func (c *Service) checkOwner(kind, id string, meta map[string]string, action string) error {
	if c.ownedElsewhere(meta) {
		owner := ownerOf(meta)
		return status.Errorf(codes.FailedPrecondition,
			"%s %s belongs to cluster %q, not to this cluster (%q): refusing to %s it; act on it from cluster %q, or remove its %s meta by hand if that cluster is gone",
			kind, id, owner, c.clusterID, action, owner, MetaCluster)
	}
	return nil
}

// checkDriveOwner is checkOwner for a drive.
func (c *Service) checkDriveOwner(d *cloudsigma.Drive, action string) error {
	return c.checkOwner("drive", d.UUID, d.Meta, action)
}

// snapshotMeta is the record a snapshot of d carries; the drive's size when
// taken is the restore size.
func (c *Service) snapshotMeta(d *cloudsigma.Drive) map[string]string {
	return map[string]string{MetaDriver: params.DriverName, MetaCluster: c.clusterID, MetaSize: strconv.FormatInt(int64(d.Size), 10)}
}

// ownedElsewhere: the record names another cluster.
func (c *Service) ownedElsewhere(meta map[string]string) bool {
	owner := ownerOf(meta)
	return owner != "" && owner != c.clusterID
}

// ownMeta is the meta a drive of this cluster carries.
func (c *Service) ownMeta(name string, p volumeParams, source string) map[string]string {
	m := map[string]string{MetaDriver: params.DriverName, MetaCluster: c.clusterID, MetaName: name, MetaSource: source,
		MetaContext: p.contextKey()}
	for k, v := range map[string]string{MetaPVCName: p.pvcName, MetaPVCNamespace: p.pvcNamespace, MetaPVName: p.pvName} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// recorded: the drive's meta was written for the volume named name. A clone
// fresh from the API carries its source's meta (or none) instead.
func recorded(d *cloudsigma.Drive, name string) bool {
	return d.Meta[MetaDriver] == params.DriverName && d.Meta[MetaName] == name
}

// recordedHere: the drive's record for the volume named name was written
// for this drive, not inherited. A clone fresh from the API carries its
// source's meta and no tags, and the source may have stood for a volume of
// the same name (deleted, then created again from its own snapshot). The
// driver writes a drive's record together with its tags, at create or in
// finishVolume's one update, so only a tagged drive's record is evidence.
func recordedHere(d *cloudsigma.Drive, name string) bool {
	return recorded(d, name) && len(d.Tags) > 0
}

// isOurs: the drive named name was created by this cluster, or is a clone
// this driver started whose meta was not yet written (clone actions take no
// meta, the copy keeps its source's; the name alone marks it until
// finishVolume records the rest).
func (c *Service) isOurs(d *cloudsigma.Drive, name string) bool {
	if !recorded(d, name) {
		return true
	}
	return d.Meta[MetaCluster] == c.clusterID
}

// isRetired: DeleteVolume retired the drive (retire.go). For CSI it is gone.
func isRetired(d *cloudsigma.Drive) bool { return d.Meta[MetaRetired] != "" }

// withMeta is a drive's meta with this driver's keys replaced by meta (an
// update replaces the whole map; a clone's inherited keys must not stay).
func withMeta(d *cloudsigma.Drive, meta map[string]string) map[string]string {
	out := maps.Clone(d.Meta)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range []string{MetaSource, MetaContext, MetaPublished, MetaPVCName, MetaPVCNamespace, MetaPVName} {
		delete(out, k)
	}
	maps.Copy(out, meta)
	return out
}

// compatible reports why an existing drive cannot stand for the request.
func compatible(d *cloudsigma.Drive, name string, p volumeParams, src *csi.VolumeContentSource, r *csi.CapacityRange) error {
	// The meta of a clone not yet recorded is its source's: no evidence,
	// even when it names this volume.
	if got, want := d.Meta[MetaSource], sourceKey(src); got != want && recordedHere(d, name) {
		return fmt.Errorf("content source %q, requested %q", got, want)
	}
	// Drives recorded before the fingerprint existed carry none.
	if got := d.Meta[MetaContext]; got != "" && got != p.contextKey() && recordedHere(d, name) {
		return fmt.Errorf("parameters that give another volume context (fsType, formatOptions or storageType)")
	}
	// A clone's storage type is the cloud's choice when the action ignores
	// the one asked for; only a drive created outright must match.
	if src == nil && d.StorageType != "" && d.StorageType != p.storageType {
		return fmt.Errorf("storage type %q, requested %q", d.StorageType, p.storageType)
	}
	size := int64(d.Size)
	if lim := r.GetLimitBytes(); lim > 0 && size > lim {
		return fmt.Errorf("size %d bytes, above the limit of %d bytes", size, lim)
	}
	// A clone smaller than requested is grown by finishVolume.
	if src == nil && size < r.GetRequiredBytes() {
		return fmt.Errorf("size %d bytes, requested at least %d bytes", size, r.GetRequiredBytes())
	}
	return nil
}

// publishRecord is what is kept of a publish, so a second publish at the
// same node can be told compatible (OK) from incompatible (ALREADY_EXISTS)
// across driver restarts. The single-node writer modes are one class: they
// attach the same way, and the attacher switches between them when
// SINGLE_NODE_MULTI_WRITER support changes. It lives in the server's meta
// (attach.RecordKeyPrefix, written by the attach's own PUT, see
// serverRecord); drives published by older drivers carry it in their meta
// (MetaPublished), read while no server record exists.
func publishRecord(node string, vc *csi.VolumeCapability, readonly bool) string {
	access := "mount"
	if vc.GetBlock() != nil {
		access = "block"
	}
	mode := "rw"
	if vc.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY {
		mode = "ro"
	}
	return fmt.Sprintf("%s/%s/%s/readonly=%t", node, access, mode, readonly)
}

// serverRecord is the publish record as the server's meta keeps it: with the
// cluster that wrote it, so an unpublish can tell from the server's read
// alone that this cluster attached the drive there.
func (c *Service) serverRecord(record string) string {
	return record + " " + MetaCluster + "=" + c.clusterID
}

// recordOnServer is the publish record of a server record, "" for none.
func recordOnServer(rec string) string {
	r, _, _ := strings.Cut(rec, " ")
	return r
}

// publishedHere: the server's record says this cluster attached the drive.
func (c *Service) publishedHere(rec string) bool {
	_, cluster, ok := strings.Cut(rec, " ")
	return ok && cluster == MetaCluster+"="+c.clusterID
}

// sourceKey is the csi_source meta value for a content source.
func sourceKey(src *csi.VolumeContentSource) string {
	switch {
	case src.GetSnapshot() != nil:
		return "snapshot:" + src.GetSnapshot().GetSnapshotId()
	case src.GetVolume() != nil:
		return "volume:" + src.GetVolume().GetVolumeId()
	}
	return ""
}
