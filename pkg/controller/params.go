package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/container-storage-interface/spec/lib/go/csi"
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

// checkFormatOptions refuses mkfs options the node would refuse, now rather
// than at the first stage: for the StorageClass's filesystem, else each
// filesystem capability's (ext4 when none is named).
func (p volumeParams) checkFormatOptions(caps []*csi.VolumeCapability) error {
	if p.formatOptions == "" {
		return nil
	}
	fsTypes := []string{p.fsType}
	if p.fsType == "" {
		fsTypes = nil
		for _, c := range caps {
			if c.GetMount() != nil {
				fs, _ := params.FSType(c.GetMount().GetFsType())
				fsTypes = append(fsTypes, fs)
			}
		}
	}
	for _, fs := range fsTypes {
		if _, err := params.FormatOptions(fs, p.formatOptions); err != nil {
			return err
		}
	}
	return nil
}
