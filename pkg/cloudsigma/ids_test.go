package cloudsigma_test

import (
	"testing"
)

// TestInvalidIDsNeverReachTheAPI: an empty or dot UUID would address
// another resource (GET drives// is the drive list, DELETE drives/../ the
// API root); the client refuses it without a call.
func TestInvalidIDsNeverReachTheAPI(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	e.readyDrive("bystander", gib)
	e.sim.ResetCalls()
	for _, id := range []string{"", ".", ".."} {
		if d, err := e.c.GetDrive(ctx, id); err == nil {
			t.Errorf("GetDrive(%q) = %+v, want an error", id, d)
		}
		if err := e.c.DeleteDrive(ctx, id); err == nil {
			t.Errorf("DeleteDrive(%q) succeeded", id)
		}
		if _, err := e.c.GetSnapshot(ctx, id); err == nil {
			t.Errorf("GetSnapshot(%q) succeeded", id)
		}
		if err := e.c.DeleteSnapshot(ctx, id); err == nil {
			t.Errorf("DeleteSnapshot(%q) succeeded", id)
		}
		if _, err := e.c.GetServer(ctx, id); err == nil {
			t.Errorf("GetServer(%q) succeeded", id)
		}
		if _, _, err := e.c.DownloadImage(ctx, id); err == nil {
			t.Errorf("DownloadImage(%q) succeeded", id)
		}
	}
	if calls := e.settledCalls("", "", 0); len(calls) != 0 {
		t.Errorf("invalid ids reached the API: %+v", calls)
	}
	if len(e.sim.Drives()) != 1 {
		t.Errorf("%d drives left, want 1", len(e.sim.Drives()))
	}
}
