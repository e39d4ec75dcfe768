// Package identity proves docs/identity.md on real loop devices through the
// real driver over gRPC: drives identified with UUID serials, with serials
// that name no drive, and with none, never a wrong device, and what each
// mode costs in API calls.
package identity

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// TestStressNoSerials: eight blank drives of one size attached and staged
// at once to a guest without serials, each file system given its volume ID
// in a file, then detached and re-attached in shuffled order for five
// rounds, every volume read back; two same-size drives attached by other
// means (one blank, one another cluster's ext4) are never taken. Wrong
// mounts are counted from the ground truth (the loop device's backing file
// behind each staging mount) and from the file.
func TestStressNoSerials(t *testing.T) {
	stress(t, virtio.GuestSerialNone)
}

// TestStressOtherSerials is the same where serials name no drive.
func TestStressOtherSerials(t *testing.T) {
	stress(t, virtio.GuestSerialOther)
}

func stress(t *testing.T, serials string) {
	if testing.Short() {
		t.Skip("loop devices, mkfs and mount: needs root and a minute")
	}
	const n, rounds = 8, 5
	e := start(t, serials, false)
	ctx := ctxT(t)
	vols := make([]string, n)
	for i := range vols {
		vols[i] = e.create(fmt.Sprintf("pvc-stress-%d", i), gib)
	}
	// Another cluster's formatted drive of the same size, there from the start.
	other := e.foreignDrive("other-cluster", gib, true)
	e.handAttach(other)
	otherDigest := e.headDigest(other)

	wrong, stages, waits := 0, 0, 0
	var mu sync.Mutex
	round := func(r int, order []string) {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, vol := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * 5 * time.Millisecond) // shuffled arrival
				w, err := e.publishStage(ctx, vol)
				mu.Lock()
				waits += w
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				file := filepath.Join(e.staging(vol), "volume-id")
				if r == 0 {
					if err := os.WriteFile(file, []byte(vol), 0o644); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", r, err)
		}
		roundWrong, roundWaits := 0, waits
		for _, vol := range order {
			stages++
			got, err := os.ReadFile(filepath.Join(e.staging(vol), "volume-id"))
			truth := mountedDrive(t, e.staging(vol))
			if err != nil || string(got) != vol || truth != vol {
				roundWrong++
				t.Errorf("round %d: volume %s staged on drive %s, its file says %q (%v)", r, vol, truth, got, err)
			}
		}
		wrong += roundWrong
		t.Logf("round %d: %d volumes staged in %s, %d wrong, %d publishes refused by the attach window so far",
			r, len(order), time.Since(start).Round(time.Millisecond), roundWrong, roundWaits)
		var wg2 sync.WaitGroup
		for _, vol := range order {
			wg2.Add(1)
			go func() {
				defer wg2.Done()
				if err := e.unstageUnpublish(ctx, vol); err != nil {
					t.Errorf("round %d: %v", r, err)
				}
			}()
		}
		wg2.Wait()
	}
	round(0, vols)
	firstWaits := waits
	// A blank drive of the same size attached by hand: the volumes are
	// formatted now, so their content tells them from it.
	blank := e.foreignDrive("hand-attached", gib, false)
	e.handAttach(blank)
	for r := 1; r <= rounds; r++ {
		order := append([]string(nil), vols...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		round(r, order)
	}
	if got := e.headDigest(blank); got != params.BlankDigest() {
		t.Errorf("the hand-attached blank drive was written to")
	}
	if got := e.headDigest(other); got != otherDigest {
		t.Errorf("the other cluster's drive was written to")
	}
	if waits != firstWaits {
		t.Errorf("distinctive (formatted) drives waited %d times in the attach window", waits-firstWaits)
	}
	fmt.Printf("identity stress (%s serials): %d stages of %d drives of %d bytes over %d rounds, %d wrong-device mounts; "+
		"attach-window waits: %d while blank, %d once formatted; 2 foreign same-size drives never taken\n",
		serials, stages, n, gib, rounds+1, wrong, firstWaits, waits-firstWaits)
}

// TestBlankTwinRefused: a blank volume and a blank drive of the same size
// attached by other means cannot be told apart without serials: the stage
// is refused, naming both devices and what to do, and neither is written.
func TestBlankTwinRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("loop devices: needs root")
	}
	e := start(t, virtio.GuestSerialNone, false)
	vol := e.create("pvc-twin", gib)
	twin := e.foreignDrive("twin", gib, false)
	e.handAttach(twin)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	_, err := e.publishStage(ctx, vol)
	if err == nil || !strings.Contains(err.Error(), "FailedPrecondition") || !strings.Contains(err.Error(), "refusing to choose") {
		t.Fatalf("stage with a blank twin: %v, want FailedPrecondition refusing to choose", err)
	}
	t.Logf("refused: %v", err)
	if e.headDigest(vol) != params.BlankDigest() || e.headDigest(twin) != params.BlankDigest() {
		t.Fatal("a drive was written to")
	}
}
