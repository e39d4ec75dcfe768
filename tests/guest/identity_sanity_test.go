//go:build guest

package guest

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

var sanityNoSerial = flag.Bool("sanity-no-serial", false, "run TestSanityNoSerial (alone: csi-sanity runs once per process)")

// TestSanityNoSerial runs csi-sanity with the node plugin in a guest whose
// disks have no serial: every drive is identified by evidence
// (docs/identity.md). The attach-limit spec publishes blank drives of one
// size without staging them, which the attach window holds by design: it
// runs in TestSanity, where serials identify drives.
func TestSanityNoSerial(t *testing.T) {
	if !*sanityNoSerial {
		// Ginkgo runs one suite per process, and TestSanity is this
		// process's: this one needs a process of its own.
		t.Skip("run alone: go test -tags guest -run TestSanityNoSerial ./tests/guest/ -args -image DIR -sanity-no-serial")
	}
	e := startSerial(t, cloudsim.SerialNone)
	guestCmd := func(argv ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return e.Sim.GuestRun(ctx, argv...)
	}
	mkdir := func(p string) (string, error) { _, err := guestCmd("mkdir", "-p", p); return p, err }
	remove := func(p string) error { _, err := guestCmd("rm", "-rf", p); return err }
	cfg := sanity.NewTestConfig()
	cfg.Address = e.Sim.GuestCSIEndpoint()
	cfg.ControllerAddress = e.Endpoint
	cfg.TargetPath = "/var/lib/csi-sanity/target"
	cfg.StagingPath = "/var/lib/csi-sanity/staging"
	cfg.CreateTargetDir, cfg.CreateStagingDir = mkdir, mkdir
	cfg.RemoveTargetPath, cfg.RemoveStagingPath = remove, remove
	cfg.CheckPath = func(p string) (sanity.PathKind, error) {
		out, err := guestCmd("sh", "-c", `if [ ! -e "$1" ]; then echo not_found; elif [ -d "$1" ]; then echo directory; elif [ -f "$1" ]; then echo file; else echo other; fi`, "check", p)
		if err != nil {
			return "", err
		}
		return sanity.IsPathKind(strings.TrimSpace(out))
	}
	cfg.TestVolumeSize = gib
	cfg.TestVolumeExpandSize = 2 * gib
	cfg.TestVolumeParameters = map[string]string{params.ParamFSType: "ext4"}
	cfg.IdempotentCount = 3
	begin := time.Now()
	sanity.Test(t, cfg)
	figure(t, "csi-sanity suite, no disk serials", time.Since(begin), "every drive identified by evidence")
	if d := e.Sim.Drives(); len(d) != 0 {
		t.Errorf("sanity left %d drives behind", len(d))
	}
}
