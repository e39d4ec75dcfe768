package cloudsim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// SizeLimits bounds the size of one drive of a storage type, in bytes.
type SizeLimits struct {
	Min, Max int64
	// MinAsFloat renders min_size as a float literal (1073741824.0), as
	// CloudSigma's recorded capabilities response does for zadara.
	MinAsFloat bool
}

// Capabilities are the account limits GET /capabilities/ reports and the
// simulator enforces.
type Capabilities struct {
	Drives               map[string]SizeLimits // storage type -> size limits
	DefaultStorageType   string
	SnapshotsMax         int // account total
	SnapshotsMaxPerDrive int
}

// LocalNVMe is the ephemeral storage type: no clone, snapshot or upload.
const LocalNVMe = "local_nvme"

// DefaultCapabilities returns the limits of the manual (ch. 5) for dssd and
// zadara, the snapshot limits of CloudSigma's recorded response (700 total,
// 90 per drive), and plausible values for the other storage types.
func DefaultCapabilities() *Capabilities {
	return &Capabilities{
		Drives: map[string]SizeLimits{
			"dssd":     {Min: 536870912, Max: 4391067795456},
			"zadara":   {Min: 1073741824, Max: 5905580032000, MinAsFloat: true},
			"ssd":      {Min: 536870912, Max: 2199023255552},
			"magnetic": {Min: 1073741824, Max: 5905580032000},
			"nvme":     {Min: 536870912, Max: 12079598531766},
			LocalNVMe:  {Min: 536870912, Max: 3298534883328},
		},
		DefaultStorageType:   "dssd",
		SnapshotsMax:         700,
		SnapshotsMaxPerDrive: 90,
	}
}

func (c *Capabilities) clone() *Capabilities {
	out := *c
	out.Drives = make(map[string]SizeLimits, len(c.Drives))
	for k, v := range c.Drives {
		out.Drives[k] = v
	}
	if out.DefaultStorageType == "" {
		out.DefaultStorageType = "dssd"
	}
	return &out
}

// checkSize validates a drive size for a storage type (error_point size).
func (c *Capabilities) checkSize(storageType string, size int64) *apiError {
	lim, ok := c.Drives[storageType]
	if !ok {
		return errValidation("storage_type", "Unknown storage type %q", storageType)
	}
	if size < lim.Min || size > lim.Max {
		return errValidation("size", "Drive size must be between %d and %d bytes for storage type %s", lim.Min, lim.Max, storageType)
	}
	return nil
}

// getCapabilities reports the limits, and the account's snapshot count.
func (a *api) getCapabilities(w http.ResponseWriter, r *http.Request) *apiError {
	drives := map[string]any{}
	for name, lim := range a.caps.Drives {
		var min any = lim.Min
		if lim.MinAsFloat {
			min = json.Number(strconv.FormatInt(lim.Min, 10) + ".0")
		}
		drives[name] = map[string]any{
			"max_size": lim.Max,
			"min_size": min,
			"size":     map[string]any{"max": lim.Max, "min": min},
			"iops":     map[string]any{"base": 30000, "max": 60000, "min": 1},
		}
	}
	current := a.st.snapshotCount()
	rng := func(min, max int64) map[string]any { return map[string]any{"min": min, "max": max} }
	host := map[string]any{
		"cpu":         rng(250, 96000),
		"cpu_per_smp": rng(1000, 3000),
		"mem":         rng(268435456, 558345748480),
		"smp":         rng(1, 32),
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"default_storage_type": a.caps.DefaultStorageType,
		"drives":               drives,
		"hosts":                map[string]any{"amd": host, "intel": host},
		"hypervisors":          map[string]any{"kvm": []string{"intel", "amd"}},
		"servers":              host,
		"snapshots": map[string]any{
			"current":       current,
			"max":           a.caps.SnapshotsMax,
			"max_per_drive": a.caps.SnapshotsMaxPerDrive,
		},
	})
	return nil
}
