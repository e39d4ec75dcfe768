package device_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

const mib = int64(1) << 20

func realFinder(byID string) *device.VirtioFinder {
	return &device.VirtioFinder{ByIDDir: byID, Trigger: device.NoTrigger,
		Timeout: 300 * time.Millisecond, Backoff: 10 * time.Millisecond}
}

// The emulated guest: real loop devices over "<uuid>.img" files, the real
// /sys and /dev, and a private by-id directory declared the simulator's
// guest (virtio.DeclareEmulatedGuest, as cloudsigma-sim --guest-devices does).
func TestVirtioFinderRealLoopDevices(t *testing.T) {
	testenv.RequireRoot(t, "loop devices")
	dir := t.TempDir()
	byID := filepath.Join(dir, "by-id")
	if err := virtio.DeclareEmulatedGuest(byID); err != nil {
		t.Fatal(err)
	}
	a := looptest.New(t, dir, 64*mib)
	b := looptest.New(t, dir, 64*mib)
	f := realFinder(byID)
	ctx := context.Background()

	link := a.Link(t, byID)
	if dev, err := f.Find(ctx, a.UUID, 64*mib); err != nil || dev != a.Dev {
		t.Fatalf("Find via link = %q, %v; want %s", dev, err, a.Dev)
	}

	// Missing link: found by its backing file; the link is udev's to
	// make, not the finder's.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if dev, err := f.Find(ctx, a.UUID, 0); err != nil || dev != a.Dev {
		t.Fatalf("Find without link = %q, %v; want %s", dev, err, a.Dev)
	}
	if target, err := os.Readlink(link); err == nil {
		t.Errorf("the finder wrote a by-id link -> %s", target)
	}

	// A link pointing at another drive's device is not trusted.
	if err := os.Symlink(b.Dev, link); err != nil {
		t.Fatal(err)
	}
	if dev, err := f.Find(ctx, a.UUID, 0); err != nil || dev != a.Dev {
		t.Fatalf("Find with link to %s = %q, %v; want %s", b.Dev, dev, err, a.Dev)
	}

	// Smaller than the drive: refused; grown online: accepted.
	if dev, err := f.Find(ctx, a.UUID, 128*mib); !errors.Is(err, device.ErrSize) {
		t.Fatalf("Find wanting 128MiB on a 64MiB device = %q, %v; want ErrSize", dev, err)
	}
	a.Grow(t, 128*mib)
	if dev, err := f.Find(ctx, a.UUID, 128*mib); err != nil || dev != a.Dev {
		t.Fatalf("Find after grow = %q, %v", dev, err)
	}
	if size, err := device.Size(a.Dev); err != nil || size != 128*mib {
		t.Errorf("Size = %d, %v; want %d", size, err, 128*mib)
	}

	// Detached: not found, whatever the stale link says.
	b.Detach(t)
	b.Link(t, byID)
	if dev, err := f.Find(ctx, b.UUID, 0); !errors.Is(err, device.ErrIdentity) && !errors.Is(err, device.ErrNotFound) {
		t.Fatalf("Find of a detached drive = %q, %v; want a retryable not-found", dev, err)
	}
}

// Without the simulator's marker a real loop device over "<uuid>.img" is
// no drive: production finders never accept loop identity.
func TestVirtioFinderRefusesLoopDevicesOutsideTheSimulator(t *testing.T) {
	testenv.RequireRoot(t, "loop devices")
	dir := t.TempDir()
	byID := filepath.Join(dir, "by-id")
	a := looptest.New(t, dir, 64*mib)
	f := realFinder(byID)
	if dev, err := f.Find(context.Background(), a.UUID, 0); !errors.Is(err, device.ErrNotFound) ||
		!strings.Contains(err.Error(), virtio.EmulatedGuestMarker) {
		t.Fatalf("Find without link = %q, %v; want ErrNotFound naming %s", dev, err, virtio.EmulatedGuestMarker)
	}
	a.Link(t, byID)
	if dev, err := f.Find(context.Background(), a.UUID, 0); !errors.Is(err, device.ErrIdentity) ||
		!strings.Contains(err.Error(), virtio.EmulatedGuestMarker) {
		t.Fatalf("Find via link = %q, %v; want ErrIdentity naming %s", dev, err, virtio.EmulatedGuestMarker)
	}
	// The simulator declares its guest: the same device is now the drive.
	if err := virtio.DeclareEmulatedGuest(byID); err != nil {
		t.Fatal(err)
	}
	if dev, err := f.Find(context.Background(), a.UUID, 0); err != nil || dev != a.Dev {
		t.Fatalf("Find in the declared guest = %q, %v; want %s", dev, err, a.Dev)
	}
}

// A real virtio disk's serial is read from sysfs; a by-id link naming our
// drive but pointing at it is refused. Needs a virtio disk with a serial.
func TestVirtioFinderRealVirtioSerial(t *testing.T) {
	testenv.RequireRoot(t, "loop devices")
	serial, err := os.ReadFile("/sys/block/vda/serial")
	if err != nil || len(strings.TrimSpace(string(serial))) == 0 {
		t.Skip("no virtio disk with a serial at /dev/vda on this machine")
	}
	byID := t.TempDir()
	id := "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	if err := os.Symlink("/dev/vda", filepath.Join(byID, virtio.ByIDName(id))); err != nil {
		t.Fatal(err)
	}
	_, err = realFinder(byID).Find(context.Background(), id, 0)
	if !errors.Is(err, device.ErrIdentity) || !strings.Contains(err.Error(), strings.TrimSpace(string(serial))) {
		t.Fatalf("Find through a link to /dev/vda: %v; want ErrIdentity naming serial %q", err, serial)
	}
}
