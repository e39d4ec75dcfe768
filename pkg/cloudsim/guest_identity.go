package cloudsim

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// What a loop-device guest shows of its drives besides the device itself,
// per serial mode (Config.GuestSerials): the by-id link a udev would make
// from the disk's serial, the guest's own /sys/block (virtio.EmulatedBlockDir)
// and the server context on a pseudo-terminal (virtio.EmulatedContextPort),
// answered like the hypervisor's ttyS1. In the modes other and none the node
// must identify drives by evidence, exactly as on such a cloud: nothing in
// this directory names a drive's UUID except the server context, which
// lists drives, not devices.

// linkName is the by-id link of a drive's device in this guest's mode, ""
// for none. Mode other numbers the disks as QEMU numbers IDE serials
// (QM00001...): a serial that names no drive.
func (g *guest) linkName(id string) string {
	switch g.serials {
	case virtio.GuestSerialNone:
		return ""
	case virtio.GuestSerialOther:
		g.seq++
		return fmt.Sprintf("virtio-QM%05d", g.seq)
	}
	return virtio.ByIDName(id)
}

// showBlock adds or removes the guest's /sys/block entry of a loop device.
func (g *guest) showBlock(dev string, on bool) {
	link := filepath.Join(g.dir, virtio.EmulatedBlockDir, filepath.Base(dev))
	if !on {
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logf("guest of server %s: %v", g.server, err)
		}
		return
	}
	_ = os.Remove(link)
	if err := os.Symlink(filepath.Join("/sys/block", filepath.Base(dev)), link); err != nil {
		logf("guest of server %s: %v", g.server, err)
	}
}

// serveContext opens a pseudo-terminal whose slave, linked as
// virtio.EmulatedContextPort in the guest's directory, answers
// server-context requests with the server's definition, drives expanded as
// the hypervisor expands them. The simulator holds a slave descriptor too,
// so the master never reads EIO between two clients.
func (g *guest) serveContext(definition func() map[string]any) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("server context port: %w", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return fmt.Errorf("server context port: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return fmt.Errorf("server context port: ptsname: %w", err)
	}
	pts := "/dev/pts/" + strconv.Itoa(n)
	slave, err := os.OpenFile(pts, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return fmt.Errorf("server context port: %w", err)
	}
	link := filepath.Join(g.dir, virtio.EmulatedContextPort)
	_ = os.Remove(link)
	if err := os.Symlink(pts, link); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	g.ctxPort = []*os.File{master, slave}
	go func() {
		_ = qemu.ServeContext(master, definition)
	}()
	return nil
}

func (g *guest) closeContext() {
	for _, f := range g.ctxPort {
		_ = f.Close()
	}
	_ = os.Remove(filepath.Join(g.dir, virtio.EmulatedContextPort))
}

// contextObject is the server's definition as its server context shows it:
// each attached drive's full definition instead of its URI.
func (st *store) contextObject(id string) map[string]any {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return map[string]any{}
	}
	def := st.renderServerLocked(v)
	drives, _ := def["drives"].([]any)
	for _, e := range drives {
		m, _ := e.(map[string]any)
		r, _ := m["drive"].(map[string]any)
		did, _ := r["uuid"].(string)
		if d := st.drives[did]; d != nil {
			m["drive"] = st.renderDriveLocked(d)
		}
	}
	return def
}

// RebootGuest re-creates every loop device of a server's loop-device guest
// in a random order, as a reboot of a real guest brings its disks back
// under other names: every device instance is new. Whatever used the
// devices (mounts) must be gone first, as a reboot ends them.
func (s *Sim) RebootGuest(server string) error {
	g := s.guests[server]
	if g == nil {
		return fmt.Errorf("server %s has no loop-device guest", server)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	files := map[string]string{}
	for id, ld := range g.devs {
		files[id] = ld.file
		if err := g.detachLocked(id); err != nil {
			return err
		}
	}
	ids := slices.Collect(maps.Keys(files))
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		if err := g.attachLocked(id, files[id]); err != nil {
			return err
		}
	}
	return nil
}
