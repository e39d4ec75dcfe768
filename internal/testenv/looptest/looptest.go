// Package looptest builds the single-machine emulation of an attached
// CloudSigma drive for tests: a sparse file named "<drive-uuid>.img" on a
// real loop device, optionally linked as by-id "virtio-<serial>". It needs
// root: see testenv.RequireRoot.
package looptest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// Drive is a loop device standing in for an attached drive.
type Drive struct {
	UUID     string
	Dev      string // /dev/loopN
	Backing  string // DIR/<uuid>.img
	detached bool
}

// New creates a sparse backing file of size bytes in dir and attaches it to
// a free loop device. Cleanup unmounts whatever still uses the device, then
// detaches it.
func New(t testing.TB, dir string, size int64) *Drive {
	t.Helper()
	testenv.RequireRoot(t, "loop devices")
	d := &Drive{UUID: uuid.NewString()}
	d.Backing = filepath.Join(dir, d.UUID+".img")
	f, err := os.Create(d.Backing)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d.Dev = strings.TrimSpace(Run(t, "losetup", "--find", "--show", d.Backing))
	t.Cleanup(func() {
		if !d.detached {
			d.Detach(t)
		}
	})
	return d
}

// Detach unmounts whatever uses the device and detaches it (a hot-unplug).
func (d *Drive) Detach(t testing.TB) {
	t.Helper()
	UnmountDevice(t, d.Dev)
	if out, err := exec.Command("losetup", "-d", d.Dev).CombinedOutput(); err != nil {
		t.Errorf("losetup -d %s: %v: %s", d.Dev, err, out)
	}
	d.detached = true
}

// Link creates byIDDir/virtio-<serial> -> the loop device, as udev would.
func (d *Drive) Link(t testing.TB, byIDDir string) string {
	t.Helper()
	link := filepath.Join(byIDDir, virtio.ByIDName(d.UUID))
	if err := os.MkdirAll(byIDDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(link)
	if err := os.Symlink(d.Dev, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// Grow extends the backing file and tells the loop driver (a hot resize).
func (d *Drive) Grow(t testing.TB, size int64) {
	t.Helper()
	if err := os.Truncate(d.Backing, size); err != nil {
		t.Fatal(err)
	}
	Run(t, "losetup", "-c", d.Dev)
}

// Run runs a command and fails the test on error; it returns stdout+stderr.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// UnmountDevice lazily unmounts every mount of dev, filesystem mounts and
// bind mounts of the node alike, so a failed test never leaks a mount that
// would keep the loop device busy.
func UnmountDevice(t testing.TB, dev string) {
	t.Helper()
	rdev, err := device.Number(dev)
	if err != nil {
		return
	}
	num := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
	for _, m := range mounts(t) {
		if m.majmin == num || (m.root == "/"+filepath.Base(dev) && device.IsBlock(m.point, rdev)) {
			_ = unix.Unmount(m.point, unix.MNT_DETACH)
		}
	}
}

// UnmountUnder lazily unmounts everything mounted below dir, deepest first.
func UnmountUnder(t testing.TB, dir string) {
	t.Helper()
	ms := mounts(t)
	for i := len(ms) - 1; i >= 0; i-- {
		if strings.HasPrefix(ms[i].point, dir+"/") {
			_ = unix.Unmount(ms[i].point, unix.MNT_DETACH)
		}
	}
}

type mountEntry struct{ majmin, root, point string }

func mounts(t testing.TB) []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mountinfo: %v", err)
		return nil
	}
	defer f.Close()
	var out []mountEntry
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, mountEntry{majmin: fields[2], root: unescape(fields[3]), point: unescape(fields[4])})
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for space and so on).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
