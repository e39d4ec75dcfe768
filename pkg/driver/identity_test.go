package driver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestProbeIsTheProcessOnly(t *testing.T) {
	resp, err := (&identity{}).Probe(context.Background(), &csi.ProbeRequest{})
	if err != nil || !resp.GetReady().GetValue() {
		t.Fatalf("Probe = %v, %v; want ready", resp, err)
	}
}

func TestReachabilityFollowsTheAPI(t *testing.T) {
	var fail bool
	var reports []bool
	r := NewReachability(func(context.Context) error {
		if fail {
			return errors.New("503 from the API")
		}
		return nil
	}, time.Hour, func(up bool) { reports = append(reports, up) })
	ctx := context.Background()
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("before any check: %v", err)
	}
	fail = true
	r.CheckNow(ctx)
	if err := r.Ready(ctx); !errors.Is(err, ErrAPIUnreachable) || err.Error() == "503 from the API" {
		t.Fatalf("after a failed check: %v; want ErrAPIUnreachable without the API's text", err)
	}
	fail = false
	r.CheckNow(ctx)
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("after the API returned: %v", err)
	}
	if len(reports) != 2 || reports[0] || !reports[1] {
		t.Fatalf("reports %v, want [false true]", reports)
	}
}
