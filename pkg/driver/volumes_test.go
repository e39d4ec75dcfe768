package driver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
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
	} {
		got, err := pickSize(&csi.CapacityRange{RequiredBytes: tc.required, LimitBytes: tc.limit}, dssd)
		if (err != nil) != tc.fail || (!tc.fail && got != tc.want) {
			t.Errorf("pickSize(%d, %d) = %d, %v; want %d (fail %v)", tc.required, tc.limit, got, err, tc.want, tc.fail)
		}
	}
}

func TestParseParams(t *testing.T) {
	p, err := parseParams(map[string]string{"storageType": "zadara", "tags": "a, b,,", "csi.storage.k8s.io/pvc/name": "data"})
	if err != nil || p.storageType != "zadara" || len(p.tags) != 2 || p.pvcName != "data" {
		t.Fatalf("parseParams: %+v %v", p, err)
	}
	if _, err := parseParams(map[string]string{"storagetype": "dssd"}); err == nil {
		t.Fatal("a misspelt parameter was accepted")
	}
	if p, _ := parseParams(nil); p.storageType != defaultStorageType {
		t.Fatalf("default storage type %q", p.storageType)
	}
}

func TestCloudCode(t *testing.T) {
	apiErr := func(status int, typ string) error {
		return fmt.Errorf("wrapped: %w", &cloudsigma.Error{StatusCode: status, Type: typ})
	}
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{apiErr(404, cloudsigma.ErrTypeNotExist), codes.NotFound},
		{apiErr(400, cloudsigma.ErrTypeValidation), codes.InvalidArgument},
		{apiErr(401, ""), codes.Unauthenticated},
		{apiErr(402, cloudsigma.ErrTypePayment), codes.ResourceExhausted},
		{apiErr(400, cloudsigma.ErrTypeBilling), codes.ResourceExhausted},
		{apiErr(403, cloudsigma.ErrTypePermission), codes.PermissionDenied},
		{&cloudsigma.Error{StatusCode: 403, Type: cloudsigma.ErrTypePermission, Message: "Snapshot limit reached"}, codes.ResourceExhausted},
		{apiErr(503, cloudsigma.ErrTypeConcurrency), codes.Unavailable},
		{apiErr(500, cloudsigma.ErrTypeBackend), codes.Unavailable},
		{apiErr(http.StatusTooManyRequests, ""), codes.Unavailable},
		{&cloudsigma.StatusError{Kind: "drive", Status: cloudsigma.StatusUnavailable}, codes.Internal},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", attach.ErrNoFreeChannel), codes.ResourceExhausted},
		{errors.New("connection reset"), codes.Unavailable},
	} {
		if got := cloudCode(tc.err); got != tc.want {
			t.Errorf("cloudCode(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestParseParamsFSType(t *testing.T) {
	if _, err := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "btrfs"}); err == nil {
		t.Fatal("an unsupported filesystem was accepted")
	}
	if p, err := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs"}); err != nil || p.fsType != "xfs" {
		t.Fatalf("xfs: %+v %v", p, err)
	}
}
