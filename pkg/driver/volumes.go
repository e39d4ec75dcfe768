package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

// Drive meta keys the driver writes (CloudSigma limits keys to 32 chars).
const (
	metaDriver       = "csi_driver"  // params.DriverName: the drive is ours
	metaCluster      = "csi_cluster" // --cluster-id of the owning cluster
	metaName         = "csi_name"    // the CSI volume name the drive stands for
	metaSource       = "csi_source"  // "", "snapshot:<uuid>" or "volume:<uuid>"
	metaSize         = "csi_size"    // on snapshots: the drive's size when taken
	metaContext      = "csi_context" // fingerprint of the volume context
	metaPublished    = "csi_publish" // node and capability of the last publish
	metaPVCName      = "pvc_name"
	metaPVCNamespace = "pvc_namespace"
	metaPVName       = "pv_name"
)

const (
	defaultStorageType = "dssd"
	// ephemeralStorageType drives cannot be cloned, snapshotted or restored
	// into.
	ephemeralStorageType = "local_nvme"
	defaultVolumeSize    = 1 << 30
	mib                  = 1 << 20
)

// volumeParams are the StorageClass parameters the driver understands.
type volumeParams struct {
	storageType   string
	tags          []string
	fsType        string
	formatOptions string
	pvcName       string
	pvcNamespace  string
	pvName        string
	// multimount: the volume serves several servers at once (a
	// MULTI_NODE_MULTI_WRITER block capability), from the request's
	// capabilities, not from parameters.
	multimount bool
}

// parseParams accepts the documented parameters and the provisioner's
// csi.storage.k8s.io/* keys; anything else is a typo the user should hear
// about now, not when the volume misbehaves.
func parseParams(in map[string]string) (volumeParams, error) {
	p := volumeParams{storageType: defaultStorageType}
	for k, v := range in {
		switch k {
		case params.ParamStorageType:
			p.storageType = strings.TrimSpace(v)
		case params.ParamTags:
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					p.tags = append(p.tags, t)
				}
			}
		case params.ParamFSType:
			var ok bool
			if p.fsType, ok = params.FSType(v); !ok {
				return p, fmt.Errorf("filesystem %q is not supported (supported: %s)", v, strings.Join(params.FSTypes, ", "))
			}
		case params.ParamFormatOptions:
			p.formatOptions = v
		case "csi.storage.k8s.io/pvc/name":
			p.pvcName = v
		case "csi.storage.k8s.io/pvc/namespace":
			p.pvcNamespace = v
		case "csi.storage.k8s.io/pv/name":
			p.pvName = v
		default:
			if !strings.HasPrefix(k, "csi.storage.k8s.io/") {
				return p, fmt.Errorf("unknown parameter %q (known: %s, %s, %s, %s)", k,
					params.ParamStorageType, params.ParamTags, params.ParamFSType, params.ParamFormatOptions)
			}
		}
	}
	if p.storageType == "" {
		p.storageType = defaultStorageType
	}
	return p, nil
}

// contextKey fingerprints the volume context. A volume_id "SHALL always
// report the same volume_context", so a request by the same name whose
// parameters give another context is ALREADY_EXISTS, not OK.
func (p volumeParams) contextKey() string {
	vc := p.volumeContext()
	keys := slices.Sorted(maps.Keys(vc))
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q;", k, vc[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// volumeContext is what the node needs later (NodeStage gets it back).
func (p volumeParams) volumeContext() map[string]string {
	vc := map[string]string{params.ParamStorageType: p.storageType}
	if p.formatOptions != "" {
		vc[params.ParamFormatOptions] = p.formatOptions
	}
	if p.fsType != "" {
		vc[params.ParamFSType] = p.fsType
	}
	return vc
}

// checkRange rejects what the spec forbids outright: "The value of this
// field MUST NOT be negative" is an invalid field (InvalidArgument), unlike
// a well-formed range the plugin cannot serve (OutOfRange).
func checkRange(r *csi.CapacityRange) error {
	if r.GetRequiredBytes() < 0 || r.GetLimitBytes() < 0 {
		return status.Errorf(codes.InvalidArgument, "capacity range: required_bytes (%d) and limit_bytes (%d) must not be negative",
			r.GetRequiredBytes(), r.GetLimitBytes())
	}
	return nil
}

// pickSize turns a capacity range into a drive size: at least the storage
// type's minimum, rounded up to whole MiB unless that would pass the limit.
func pickSize(r *csi.CapacityRange, limits cloudsigma.SizeRange) (int64, error) {
	required, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if required < 0 || limit < 0 {
		return 0, fmt.Errorf("capacity must not be negative")
	}
	if limit > 0 && required > limit {
		return 0, fmt.Errorf("required bytes %d exceed limit bytes %d", required, limit)
	}
	size := required
	if size == 0 {
		size = defaultVolumeSize
		if limit > 0 && limit < size {
			size = limit
		}
	}
	if size%mib != 0 {
		size += mib - size%mib
		if limit > 0 && size > limit {
			size = limit
		}
	}
	min, max := int64(limits.MinSize), int64(limits.MaxSize)
	if size < min {
		size = min
	}
	if limit > 0 && size > limit {
		return 0, fmt.Errorf("the smallest drive of this storage type is %d bytes, above the limit of %d bytes", min, limit)
	}
	if max > 0 && size > max {
		return 0, fmt.Errorf("%d bytes exceed the largest drive of this storage type (%d bytes)", size, max)
	}
	return size, nil
}

// fits reports whether an existing size satisfies a capacity range.
func fits(size int64, r *csi.CapacityRange) bool {
	return size >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || size <= r.GetLimitBytes())
}

// multiNode reports a capability for several servers at once: a drive with
// allow_multimount, attached to each (params.CheckAccessMode allows it for
// raw block volumes only).
func multiNode(caps ...*csi.VolumeCapability) bool {
	for _, c := range caps {
		if c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
			return true
		}
	}
	return false
}

// malformedCapabilities reports a capability that lacks what the spec
// marks REQUIRED (the access mode) or "MUST be specified" (the access
// type): a request error, unlike a well-formed capability the driver does
// not support.
func malformedCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return fmt.Errorf("volume capabilities are required")
	}
	for _, c := range caps {
		switch {
		case c.GetAccessMode() == nil:
			return fmt.Errorf("access mode is required")
		case c.GetBlock() == nil && c.GetMount() == nil:
			return fmt.Errorf("access type (mount or block) is required")
		}
	}
	return nil
}

// checkCapabilities returns why the capabilities cannot be served, or nil.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if err := malformedCapabilities(caps); err != nil {
		return err
	}
	for _, c := range caps {
		if err := params.CheckAccessMode(c); err != nil {
			return err
		}
		if _, ok := params.FSType(c.GetMount().GetFsType()); !ok {
			return fmt.Errorf("filesystem %q is not supported (supported: %s)", c.GetMount().GetFsType(), strings.Join(params.FSTypes, ", "))
		}
	}
	return nil
}

func isBlock(caps []*csi.VolumeCapability) bool {
	for _, c := range caps {
		if c.GetBlock() != nil {
			return true
		}
	}
	return false
}

// storageTypes lists what capabilities offer, for error messages.
func storageTypes(caps *cloudsigma.Capabilities) string {
	var names []string
	for k := range caps.Drives {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
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
