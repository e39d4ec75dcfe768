package driver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// The context fingerprint depends on what the node gets back only, not on
// the provisioner's per-claim keys; publish records tell writer modes from
// read-only ones, block from mount and the readonly flag.
func TestContextKeyAndPublishRecord(t *testing.T) {
	a, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs", "csi.storage.k8s.io/pvc/name": "a"})
	b, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs", "csi.storage.k8s.io/pvc/name": "b", "tags": "x"})
	c, _ := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "ext4"})
	if a.contextKey() != b.contextKey() || a.contextKey() == c.contextKey() {
		t.Fatalf("context keys: %s %s %s", a.contextKey(), b.contextKey(), c.contextKey())
	}
	mode := func(m csi.VolumeCapability_AccessMode_Mode, block bool) *csi.VolumeCapability {
		vc := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: m},
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}
		if block {
			vc.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}
		return vc
	}
	base := publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, false), false)
	if got := publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, false), false); got != base {
		t.Fatalf("writer modes differ: %s %s", got, base)
	}
	for _, other := range []string{
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, false), false),
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, true), false),
		publishRecord("n", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, false), true),
	} {
		if other == base {
			t.Fatalf("%s should differ from %s", other, base)
		}
	}
	if err := checkRange(&csi.CapacityRange{RequiredBytes: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative range: %v", err)
	}
}
