package cloudsim

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// The download endpoint serves a Range (206): the controller's content
// evidence reads 64 KiB of a drive this way.
func TestDownloadRange(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("r", gib, nil)
	e.waitStatus(id, "unmounted")
	writeAt(t, filepath.Join(e.sim.DataDir(), id+".img"), 1024, []byte("superblock"))
	req, _ := http.NewRequest("GET", e.url("/drives/"+id+"/download/"), nil)
	req.SetBasicAuth(testUser, testPass)
	req.Header.Set("Range", "bytes=1024-1033")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || string(b) != "superblock" {
		t.Fatalf("range read: %d %q", resp.StatusCode, b)
	}
}

// Per serial mode, a loop-device guest shows what such a guest would: the
// by-id link of a UUID serial, of a serial naming no drive, or none; its
// own block directory; and the server context, drives expanded with size.
func TestGuestSerialModes(t *testing.T) {
	for mode, link := range map[string]string{
		virtio.GuestSerialUUID: "virtio-", virtio.GuestSerialOther: "virtio-QM00001", virtio.GuestSerialNone: "",
	} {
		t.Run(mode, func(t *testing.T) {
			e, local, dir := newGuestEnv(t, func(c *Config) { c.GuestSerials = map[string]string{c.LocalServer: mode} })
			id := e.createDrive("m", gib, nil)
			e.waitStatus(id, "unmounted")
			e.attach(local, id, "0:1")
			waitFor(t, "device", func() bool { return e.sim.GuestDevices()[id] != "" })
			dev := e.sim.GuestDevices()[id]
			if virtio.EmulatedGuestSerials(dir) != mode {
				t.Errorf("marker declares %q", virtio.EmulatedGuestSerials(dir))
			}
			var links []string
			entries, _ := os.ReadDir(dir)
			for _, en := range entries {
				if strings.HasPrefix(en.Name(), "virtio-") {
					links = append(links, en.Name())
				}
			}
			switch {
			case link == "" && len(links) != 0, link != "" && (len(links) != 1 || !strings.HasPrefix(links[0], link)):
				t.Errorf("links %v, want %q", links, link)
			case mode != virtio.GuestSerialUUID && strings.Contains(strings.Join(links, ""), id[:8]):
				t.Errorf("link %v names the drive", links)
			}
			if target, err := os.Readlink(filepath.Join(dir, virtio.EmulatedBlockDir, filepath.Base(dev))); err != nil || target != "/sys/block/"+filepath.Base(dev) {
				t.Errorf("block dir entry of %s: %q %v", dev, target, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sc, err := servercontext.ReadContext(ctx, filepath.Join(dir, virtio.EmulatedContextPort))
			if err != nil {
				t.Fatal(err)
			}
			if sc.UUID != local || len(sc.Drives) != 1 || sc.Drives[0].DriveUUID != id || sc.Drives[0].Size != gib || sc.Drives[0].DevChannel != "0:1" {
				t.Fatalf("context %+v", sc)
			}
			e.detach(local, id)
			waitFor(t, "device gone", func() bool { return e.sim.GuestDevices()[id] == "" })
			if _, err := os.Lstat(filepath.Join(dir, virtio.EmulatedBlockDir, filepath.Base(dev))); err == nil {
				t.Error("block dir entry left after detach")
			}
		})
	}
}
