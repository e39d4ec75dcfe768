package device

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Probe needs no root: stat of a device node is allowed to anyone.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want Info
	}{
		{dir, Info{Dir: true}},
		{link, Info{Dir: true}}, // links are followed, as by-id links must be
		{file, Info{}},
		{"/dev/null", Info{}}, // a character device is not a block device
	} {
		if got, err := Probe(tc.path); err != nil || got != tc.want {
			t.Errorf("Probe(%s) = %+v, %v; want %+v", tc.path, got, err, tc.want)
		}
		if _, err := Number(tc.path); err == nil || !strings.Contains(err.Error(), "not a block device") {
			t.Errorf("Number(%s) = %v, want not a block device", tc.path, err)
		}
	}
	if _, err := Probe(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Probe of a missing path: %v, want ErrNotExist", err)
	}
}

// A real block device node (any loop or virtio disk here) has the number
// sysfs gives it.
func TestProbeBlockDevice(t *testing.T) {
	var dev, num string
	for _, name := range []string{"loop0", "vda", "sda", "nvme0n1"} {
		b, err := os.ReadFile(filepath.Join(DefaultSysDir, "block", name, "dev"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(DefaultDevDir, name)); err == nil {
			dev, num = filepath.Join(DefaultDevDir, name), strings.TrimSpace(string(b))
			break
		}
	}
	if dev == "" {
		t.Skip("no block device node with a sysfs entry on this machine")
	}
	info, err := Probe(dev)
	if err != nil || !info.Block || info.Dir {
		t.Fatalf("Probe(%s) = %+v, %v; want a block device", dev, info, err)
	}
	if got := fmt.Sprintf("%d:%d", unix.Major(info.Rdev), unix.Minor(info.Rdev)); got != num {
		t.Errorf("Probe(%s) number %s, sysfs says %s", dev, got, num)
	}
	if n, err := Number(dev); err != nil || n != info.Rdev || !IsBlock(dev, n) || IsBlock(dev, n+1) {
		t.Errorf("Number(%s) = %d, %v; IsBlock disagrees with Probe's %d", dev, n, err, info.Rdev)
	}
}
