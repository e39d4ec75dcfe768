package controller

import (
	"fmt"
	"math"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
	if size > math.MaxInt64-mib {
		// Rounding up would wrap around to a negative size.
		return 0, fmt.Errorf("%d bytes is beyond any drive size", size)
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
