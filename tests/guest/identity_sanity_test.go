//go:build guest

package guest

import (
	"flag"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
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
	cfg := guestSanityConfig(e)
	cfg.IdempotentCount = 3
	begin := time.Now()
	sanity.Test(t, cfg)
	figure(t, "csi-sanity suite, no disk serials", time.Since(begin), "every drive identified by evidence")
	if d := e.Sim.Drives(); len(d) != 0 {
		t.Errorf("sanity left %d drives behind", len(d))
	}
}
