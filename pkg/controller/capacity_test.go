package controller

import (
	"math"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestPickSize(t *testing.T) {
	dssd := cloudsigma.SizeRange{MinSize: 512 * mib, MaxSize: 4096 * 1024 * mib}
	for _, tc := range []struct {
		required, limit, want int64
		fail                  bool
	}{
		{0, 0, 1 << 30, false},                     // default 1 GiB
		{1, 0, 512 * mib, false},                   // up to the storage type minimum
		{1<<30 + 1, 0, 1<<30 + mib, false},         // whole MiB
		{1<<30 + 1, 1<<30 + 10, 1<<30 + 10, false}, // rounding would pass the limit: clamp
		{0, 100 * mib, 0, true},                    // limit below the minimum
		{5 << 40, 0, 0, true},                      // above the maximum
		{2 << 30, 1 << 30, 0, true},                // required > limit
		{600 * mib, 700 * mib, 600 * mib, false},
		{math.MaxInt64, 0, 0, true}, // near the int64 limit: never a wrapped size
		{math.MaxInt64 - 1, 0, 0, true},
		{math.MaxInt64 - mib + 1, math.MaxInt64, 0, true},
	} {
		got, err := pickSize(&csi.CapacityRange{RequiredBytes: tc.required, LimitBytes: tc.limit}, dssd)
		if (err != nil) != tc.fail || (!tc.fail && got != tc.want) {
			t.Errorf("pickSize(%d, %d) = %d, %v; want %d (fail %v)", tc.required, tc.limit, got, err, tc.want, tc.fail)
		}
	}
}
