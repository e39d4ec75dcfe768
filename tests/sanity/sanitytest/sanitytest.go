// Package sanitytest runs the csi-sanity suite (every Identity, Controller
// and Node test) against the real driver in single-machine mode: gRPC over a
// unix socket, HTTP to the simulator, and the simulator's guest devices as
// real loop devices that the node service formats and mounts.
//
// Ginkgo runs one suite per process, so each filesystem has its own test
// package (tests/sanity/ext4, tests/sanity/xfs) calling Run.
package sanitytest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/node"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

const gib = 1 << 30

// Run runs csi-sanity with volumes formatted as fsType. It fails, never
// skips, when the machine cannot run node tests: CI must prove them.
func Run(t *testing.T, fsType string) {
	RunSerials(t, fsType, virtio.GuestSerialUUID)
}

// RunSerials is Run on a guest whose disks show serials as serials says
// (virtio.GuestSerialUUID, GuestSerialOther, GuestSerialNone): in the last
// two the node identifies every drive by evidence (docs/identity.md).
func RunSerials(t *testing.T, fsType, serials string) {
	RequireNodeTools(t, "mkfs."+fsType)
	guest := t.TempDir()
	env := harness.Start(t, harness.Options{
		GuestDevicesDir: guest, GuestSerials: serials,
		// Where the guest shows UUID serials the operator tells the
		// controller so (--drive-identity=uuid-serial): no content read,
		// no attach window (docs/identity.md).
		SerialsOnly: serials == virtio.GuestSerialUUID,
		Node: func(serverUUID string) (csi.NodeServer, error) {
			return node.New(node.Config{
				NodeID: serverUUID, Location: harness.Location,
				Finder: GuestFinder(t, guest, serverUUID),
			})
		},
	})
	work := t.TempDir()
	cfg := sanity.NewTestConfig()
	cfg.Address = env.Endpoint
	cfg.TargetPath = filepath.Join(work, "target")
	cfg.StagingPath = filepath.Join(work, "staging")
	cfg.TestVolumeSize = gib
	cfg.TestVolumeExpandSize = 2 * gib
	cfg.TestVolumeParameters = map[string]string{params.ParamFSType: fsType}
	// That test publishes max_volumes_per_node blank drives of one size
	// without staging any: where the node identifies drives by evidence,
	// the attach window holds the second until the first is staged, by
	// design (docs/identity.md), so it runs where serials identify drives.
	cfg.TestNodeVolumeAttachLimit = serials == virtio.GuestSerialUUID
	cfg.IdempotentCount = 3
	sanity.Test(t, cfg)

	// Everything sanity created it also deleted: no drive or snapshot is
	// left in the cloud and no loop device is left on the machine.
	if d := env.Sim.Drives(); len(d) != 0 {
		t.Errorf("sanity left %d drives behind: %+v", len(d), d)
	}
	if s := env.Sim.Snapshots(); len(s) != 0 {
		t.Errorf("sanity left %d snapshots behind", len(s))
	}
}

// RequireNodeTools stops the test unless it runs as root (testenv.RequireRoot)
// with the given tools installed (.ci/run installs them).
func RequireNodeTools(t *testing.T, tools ...string) {
	t.Helper()
	testenv.RequireRoot(t, "node tests use loop devices, mkfs and mount")
	for _, tool := range append([]string{"losetup", "blkid", "mount"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (hack/install-tools.sh installs it): %v", tool, err)
		}
	}
}

// GuestFinder is the node's finder in the simulator's emulated guest dir of
// server: its by-id links, its server context port and records in a
// temporary directory, the mode detected as on a real node.
func GuestFinder(t testing.TB, dir, server string) *device.VirtioFinder {
	return &device.VirtioFinder{
		ByIDDir: dir, Trigger: device.NoTrigger, Timeout: 20 * time.Second, StateDir: t.TempDir(),
		Context: func(ctx context.Context) (*servercontext.Context, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			sc, err := servercontext.ReadContext(ctx, filepath.Join(dir, virtio.EmulatedContextPort))
			if err == nil && sc.UUID != server {
				return nil, fmt.Errorf("server context of %s, not %s", sc.UUID, server)
			}
			return sc, err
		},
	}
}
