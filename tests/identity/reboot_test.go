package identity

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// TestRebootRenamesDevices: eight drives published blank and formatted by
// their stage; then the guest reboots (mounts gone, a new boot ID, every
// device re-created under shuffled names) and the kubelet stages each
// volume again with the publish_context of the original publish, whose
// digest is of the blank drive. Each must be found on its own device (the
// file system the node remembered), three reboots in a row.
func TestRebootRenamesDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("loop devices, mkfs and mount: needs root")
	}
	const n, reboots = 8, 3
	proc := t.TempDir()
	bootFile := filepath.Join(proc, "sys", "kernel", "random", "boot_id")
	setBoot := func(i int) {
		if err := os.MkdirAll(filepath.Dir(bootFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bootFile, []byte(fmt.Sprintf("00000000-0000-4000-8000-%012d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setBoot(0)
	e := startFinder(t, virtio.GuestSerialNone, false, func(f *device.VirtioFinder) { f.ProcDir = proc })
	ctx := ctxT(t)
	vols := make([]string, n)
	pcs := make([]map[string]string, n)
	for i := range vols {
		vols[i] = e.create(fmt.Sprintf("pvc-reboot-%d", i), gib)
	}
	// A run that stops half way must not leave its mounts (and so the
	// simulator's loop devices) behind; after a clean run nothing is
	// mounted and this does nothing.
	t.Cleanup(func() {
		for _, vol := range vols {
			_ = unix.Unmount(e.staging(vol), unix.MNT_DETACH)
		}
	})
	var wg sync.WaitGroup
	for i, vol := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, pc, err := e.publishStageContext(ctx, vol)
			if err != nil {
				t.Error(err)
				return
			}
			pcs[i] = pc
			if err := os.WriteFile(filepath.Join(e.staging(vol), "volume-id"), []byte(vol), 0o644); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, pc := range pcs {
		if pc[params.PublishContentDigest] != params.BlankDigest() {
			t.Fatalf("publish_context digest %s, want the blank drive's", pc[params.PublishContentDigest])
		}
	}
	wrong, renamed := 0, 0
	for r := 1; r <= reboots; r++ {
		before := e.Sim.GuestDevices()
		for _, vol := range vols {
			if err := unix.Unmount(e.staging(vol), 0); err != nil {
				t.Fatalf("reboot %d: unmounting %s: %v", r, vol, err)
			}
		}
		setBoot(r)
		if err := e.Sim.RebootGuest(e.Server); err != nil {
			t.Fatal(err)
		}
		after := e.Sim.GuestDevices()
		for id, dev := range before {
			if after[id] != dev {
				renamed++
			}
		}
		for i, vol := range vols {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.stage(ctx, vol, pcs[i]); err != nil {
					t.Errorf("reboot %d: %v", r, err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for _, vol := range vols {
			got, err := os.ReadFile(filepath.Join(e.staging(vol), "volume-id"))
			if truth := mountedDrive(t, e.staging(vol)); err != nil || string(got) != vol || truth != vol {
				wrong++
				t.Errorf("reboot %d: volume %s staged on drive %s, its file says %q (%v)", r, vol, truth, got, err)
			}
		}
	}
	fmt.Printf("identity reboot (no serials): %d drives re-staged after each of %d reboots with their original (blank) publish_context, "+
		"%d device names changed, %d wrong-device mounts\n", n, reboots, renamed, wrong)
	for _, vol := range vols {
		if err := e.unstageUnpublish(ctx, vol); err != nil {
			t.Error(err)
		}
	}
}
