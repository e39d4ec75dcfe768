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
	mount := ext4Writer
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

// TestIdentityHandAttached: in a guest whose disks show no serial, a drive
// attached by hand (through the API, not the driver) has the size of a
// volume published next. While both are blank nothing tells them apart:
// the stage is refused, nothing is formatted or mounted. Once the other
// drive holds something, the volume stages on its own device and the other
// drive is left as it was.
func TestIdentityHandAttached(t *testing.T) {
	e := startSerial(t, cloudsim.SerialNone)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	node := e.nodeClient()
	mount := ext4Writer
	disks := func(want string) {
		e.waitGuest(ctx, t, want+" disks", "ls /sys/block | grep -c '^vd' || true", want)
	}
	hand := e.drive(ctx, t, "hand-attached")
	e.attach(ctx, t, hand)
	disks("1")
	v, err := e.cc.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "identity-hand", CapacityRange: &csi.CapacityRange{RequiredBytes: gib},
		VolumeCapabilities: []*csi.VolumeCapability{mount}})
	if err != nil {
		t.Fatal(err)
	}
	vol := v.Volume.VolumeId
	var pc map[string]string
	if err := retryCodes(ctx, func() error {
		p, err := e.cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: e.Server, VolumeCapability: mount})
		pc = p.GetPublishContext()
		return err
	}, codes.Unavailable, codes.Aborted); err != nil {
		t.Fatal(err)
	}
	disks("2")
	staging := "/var/lib/identity/hand"
	stage := func(limit time.Duration) error {
		sctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		_, err := node.NodeStageVolume(sctx, &csi.NodeStageVolumeRequest{VolumeId: vol, PublishContext: pc, StagingTargetPath: staging, VolumeCapability: mount})
		return err
	}
	err = stage(20 * time.Second)
	if c := status.Code(err); c != codes.FailedPrecondition && c != codes.DeadlineExceeded && c != codes.NotFound {
		t.Fatalf("stage beside a blank hand-attached twin: %v, want a refusal", err)
	}
	t.Logf("refused, as it must be: %v", err)
	for _, id := range []string{hand, vol} {
		if !zeroHead(t, e, id) {
			t.Errorf("drive %s was written by a refused stage", id)
		}
	}
	if out, _ := e.Sim.GuestRun(ctx, "sh", "-c", "grep ' /var/lib/identity' /proc/mounts || true"); strings.TrimSpace(out) != "" {
		t.Fatalf("mounted after a refusal: %s", out)
	}

	// The hand-attached drive holds something now: it no longer looks like
	// the volume.
	e.detach(ctx, t, hand)
	disks("1")
	mark := []byte("written by hand, not a file system")
	f, err := os.OpenFile(filepath.Join(e.Sim.DataDir(), hand+".img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(mark, 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.attach(ctx, t, hand)
	disks("2")
	if err := stage(time.Minute); err != nil {
		t.Fatalf("stage once the other drive is distinct: %v", err)
	}
	got, err := e.Sim.GuestRun(ctx, "findmnt", "-n", "-o", "UUID", staging)
	if err != nil || strings.TrimSpace(got) != fsUUID(t, e, vol) {
		t.Fatalf("staged file system %q (%v), want the volume's %q", strings.TrimSpace(got), err, fsUUID(t, e, vol))
	}
	b := make([]byte, len(mark))
	if f, err := os.Open(filepath.Join(e.Sim.DataDir(), hand+".img")); err != nil {
		t.Fatal(err)
	} else {
		_, err = f.ReadAt(b, 4096)
		f.Close()
		if err != nil || string(b) != string(mark) || fsUUID(t, e, hand) != "no ext4" {
			t.Fatalf("the hand-attached drive changed: %q %v, fs %s", b, err, fsUUID(t, e, hand))
		}
	}
	if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol, StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vol, NodeId: e.Server}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol}); err != nil {
		t.Fatal(err)
	}
	e.detach(ctx, t, hand)
}

// zeroHead reports whether a drive's first 4 MiB, in its backing file on
// the host, are zeros.
func zeroHead(t *testing.T, e *env, id string) bool {
	f, err := os.Open(filepath.Join(e.Sim.DataDir(), id+".img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4<<20)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
