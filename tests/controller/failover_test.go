package controller_test

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

func publishTo(t *testing.T, c csi.ControllerClient, volID, node string) error {
	t.Helper()
	_, err := c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{VolumeId: volID, NodeId: node, VolumeCapability: mountCap})
	return err
}

// A node died and its server is stopped: publishing the volume at another
// node takes the drive from the stopped server (keeping the rest of that
// server's definition) and attaches it.
func TestPublishTakesTheDriveFromAStoppedServer(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-failover", gib, nil)
	dead := e.Sim.CreateServer("dead-node", true)
	if err := publishTo(t, c, vol.GetVolumeId(), dead); err != nil {
		t.Fatalf("publish at the first node: %v", err)
	}
	if err := e.Sim.SetServerStatus(dead, "stopped"); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Sim.Server(dead)

	if err := publishTo(t, c, vol.GetVolumeId(), e.Server); err != nil {
		t.Fatalf("publish at the second node after the first stopped: %v", err)
	}
	d, _ := e.Sim.Drive(vol.GetVolumeId())
	if len(d.MountedOn) != 1 || d.MountedOn[0] != e.Server {
		t.Fatalf("drive mounted on %v, want only %s", d.MountedOn, e.Server)
	}
	after, _ := e.Sim.Server(dead)
	if len(after.Drives) != len(before.Drives)-1 {
		t.Errorf("stopped server holds %d drives, had %d: want the volume's drive removed only", len(after.Drives), len(before.Drives))
	}
	// The drive's publish record leaves with it; the rest of the meta stays.
	if after.Name != before.Name || len(after.Meta) != len(before.Meta)-1 {
		t.Errorf("the stopped server's other fields changed: %+v -> %+v", before, after)
	}
}

// The first node's server still runs: the drive stays there, and the error
// names the server and what the operator can do.
func TestPublishNeverTakesTheDriveFromARunningServer(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol := create(t, c, "pvc-held", gib, nil)
	busy := e.Sim.CreateServer("busy-node", true)
	if err := publishTo(t, c, vol.GetVolumeId(), busy); err != nil {
		t.Fatalf("publish at the first node: %v", err)
	}
	for _, state := range []string{"running", "paused"} {
		if err := e.Sim.SetServerStatus(busy, state); err != nil {
			t.Fatal(err)
		}
		err := publishTo(t, c, vol.GetVolumeId(), e.Server)
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("publish while the holder is %s: %v, want FailedPrecondition", state, err)
		}
		msg := status.Convert(err).Message()
		for _, s := range []string{busy, state, "stop server"} {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not say %q", msg, s)
			}
		}
		d, _ := e.Sim.Drive(vol.GetVolumeId())
		if len(d.MountedOn) != 1 || d.MountedOn[0] != busy {
			t.Fatalf("drive mounted on %v, want it left on %s", d.MountedOn, busy)
		}
	}
}
