package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// Under the manual's literal rule a running server answers a drives-list
// change with 200 and ignores it. The driver checks the answer: publish fails
// clearly and retryably instead of reporting an attach that never happened,
// and so does unpublish. A stopped server takes the change.
func TestIgnoredHotplugIsNeverReportedAsDone(t *testing.T) {
	e := harness.Start(t, harness.Options{Hotplug: cloudsim.HotplugIgnore})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-hotplug", gib, nil)
	err := publishTo(t, c, vol.GetVolumeId(), e.Server)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("publish to a running server that ignores the change: %v, want Unavailable", err)
	}
	for _, s := range []string{e.Server, vol.GetVolumeId(), "ignores"} {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("message %q does not say %q", status.Convert(err).Message(), s)
		}
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); len(d.MountedOn) != 0 {
		t.Fatalf("drive mounted on %v after an ignored change", d.MountedOn)
	}

	// Stopped, the server takes the drive; running again, it keeps it.
	if err := e.Sim.SetServerStatus(e.Server, "stopped"); err != nil {
		t.Fatal(err)
	}
	if err := publishTo(t, c, vol.GetVolumeId(), e.Server); err != nil {
		t.Fatalf("publish to a stopped server: %v", err)
	}
	if err := e.Sim.SetServerStatus(e.Server, "running"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), NodeId: e.Server})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "still in its definition") {
		t.Fatalf("unpublish from a running server that ignores the change: %v, want Unavailable saying so", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the refusal took %s: it should come from the server's answer, not a timeout", took)
	}
}

// With hot-plug accepted (what public users report), publish is confirmed
// by the server's answer listing the drive at its channel, and succeeds.
func TestAcceptedHotplugIsConfirmed(t *testing.T) {
	e := harness.Start(t, harness.Options{Hotplug: cloudsim.HotplugAccept})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-hotplug-ok", gib, nil)
	if err := publishTo(t, c, vol.GetVolumeId(), e.Server); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if d, _ := e.Sim.Drive(vol.GetVolumeId()); len(d.MountedOn) != 1 || d.MountedOn[0] != e.Server {
		t.Fatalf("drive mounted on %v", d.MountedOn)
	}
}
