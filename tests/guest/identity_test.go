//go:build guest

package guest

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

var identityRounds = flag.Int("identity-rounds", 5, "TestIdentityNoSerial: detach and shuffled re-attach rounds")

// TestIdentityNoSerial is docs/identity.md's proof on a real kernel: the
// guest's disks have no serial, eight blank drives of one size are
// published and staged at once, each file system is given its volume ID,
// then every round detaches them all and re-attaches them in shuffled
// order. Each staging mount is checked against the ground truth: the file
// system UUID in the drive's backing file on the host.
func TestIdentityNoSerial(t *testing.T) {
	const n = 8
	e := startSerial(t, cloudsim.SerialNone)
	if got := e.guestSerials(t); len(got) != 0 {
		t.Fatalf("the guest shows serials %v; want none", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ctrl := csi.NewControllerClient(e.Conn())
	node := e.nodeClient()
	mount := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	vols := make([]string, n)
	for i := range vols {
		v, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: fmt.Sprintf("identity-%d", i),
			CapacityRange: &csi.CapacityRange{RequiredBytes: gib}, VolumeCapabilities: []*csi.VolumeCapability{mount}})
		if err != nil {
			t.Fatal(err)
		}
		vols[i] = v.Volume.VolumeId
	}
	staging := func(v string) string { return "/var/lib/identity/" + v }
	wrong, stages := 0, 0
	for r := 0; r <= *identityRounds; r++ {
		order := append([]string(nil), vols...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		begin := time.Now()
		var wg sync.WaitGroup
		for _, v := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pc map[string]string
				err := retryCodes(ctx, func() error {
					p, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v, NodeId: e.Server, VolumeCapability: mount})
					pc = p.GetPublishContext()
					return err
				}, codes.Unavailable, codes.Aborted)
				if err == nil {
					err = retryCodes(ctx, func() error {
						_, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v, PublishContext: pc,
							StagingTargetPath: staging(v), VolumeCapability: mount})
						return err
					}, codes.NotFound, codes.Aborted)
				}
				if err == nil && r == 0 {
					_, err = e.Sim.GuestRun(ctx, "sh", "-c", `printf %s "$1" > "$2/volume-id"`, "w", v, staging(v))
				}
				if err != nil {
					t.Errorf("round %d, volume %s: %v", r, v, err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		roundWrong := 0
		for _, v := range order {
			stages++
			got, err := e.Sim.GuestRun(ctx, "cat", staging(v)+"/volume-id")
			fs, err2 := e.Sim.GuestRun(ctx, "findmnt", "-n", "-o", "UUID", staging(v))
			if err != nil || err2 != nil || got != v || strings.TrimSpace(fs) != fsUUID(t, e, v) {
				roundWrong++
				t.Errorf("round %d: volume %s: file %q, mounted fs %q, the drive's fs %q (%v %v)", r, v, got, strings.TrimSpace(fs), fsUUID(t, e, v), err, err2)
			}
		}
		wrong += roundWrong
		figure(t, fmt.Sprintf("round %d: %d drives published and staged", r, n), time.Since(begin), fmt.Sprintf("%d wrong", roundWrong))
		for _, v := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v, StagingTargetPath: staging(v)}); err != nil {
					t.Errorf("unstage %s: %v", v, err)
				}
				if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v, NodeId: e.Server}); err != nil {
					t.Errorf("unpublish %s: %v", v, err)
				}
			}()
		}
		wg.Wait()
	}
	fmt.Printf("guest identity (no serials): %d stages of %d drives over %d rounds, %d wrong-device mounts\n", stages, n, *identityRounds+1, wrong)
	for _, v := range vols {
		if _, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v}); err != nil {
			t.Error(err)
		}
	}
}

// fsUUID reads the ext4 UUID from the drive's backing file on the host.
func fsUUID(t *testing.T, e *env, id string) string {
	f, err := os.Open(filepath.Join(e.Sim.DataDir(), id+".img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil || binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 {
		return "no ext4"
	}
	u, _ := uuid.FromBytes(sb[104:120])
	return u.String()
}

func retryCodes(ctx context.Context, f func() error, again ...codes.Code) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		retry := false
		for _, c := range again {
			retry = retry || status.Code(err) == c
		}
		if err == nil || !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// startSerial is start with the guest's disks in a serial form.
func startSerial(t *testing.T, serial string) *env {
	t.Helper()
	if *imageDir == "" {
		t.Fatal("-image is required: hack/guest-image.sh OUT_DIR builds it (make e2e-guest does)")
	}
	h := harness.Start(t, harness.Options{QEMU: &cloudsim.QEMUGuest{
		ImageDir: *imageDir, Accel: *accel, Serial: serial,
		NodeArgs: []string{"--location=" + harness.Location},
	}})
	info, _ := h.Sim.GuestInfoOf(h.Server)
	t.Cleanup(func() { saveConsole(t, h.Server, info.ConsoleLog) })
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := h.Sim.GuestReady(ctx); err != nil {
		t.Fatalf("guest (%s: %s): %v", info.Accel, info.AccelReason, err)
	}
	conn, err := grpc.NewClient(h.Sim.GuestCSIEndpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{Env: h, node: conn, nodes: map[string]*grpc.ClientConn{h.Server: conn}, cc: csi.NewControllerClient(h.Conn())}
}
