package node

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
)

// DirectMounter mounts a device's file system with mount(2), with its
// options, and hands anything else to the mounter it wraps: bind mounts,
// and options only mount(8) understands (the kernel refuses them).
func TestDirectMounter(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { looptest.UnmountUnder(t, dir) })
	d := looptest.New(t, dir, 64<<20)
	looptest.Run(t, "mkfs.ext4", "-q", "-F", d.Dev)
	wrapped := mount.NewFakeMounter(nil)
	m := DirectMounter{Interface: wrapped}

	target := filepath.Join(dir, "direct")
	if err := unix.Mkdir(target, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := m.Mount(d.Dev, target, "ext4", []string{"ro,noatime", "defaults"}); err != nil {
		t.Fatalf("mount(2) of %s: %v", d.Dev, err)
	}
	if log := wrapped.GetLog(); len(log) != 0 {
		t.Fatalf("a device mount went to mount(8): %v", log)
	}
	mi, err := mountAt(target)
	if err != nil {
		t.Fatal(err)
	}
	if mi.FsType != "ext4" || !slices.Contains(mi.MountOptions, "ro") || !slices.Contains(mi.MountOptions, "noatime") {
		t.Fatalf("mounted %s with %v, want ext4 with ro and noatime", mi.FsType, mi.MountOptions)
	}
	if err := unix.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}

	// Options the kernel refuses (nofail is mount(8)'s), bind mounts and
	// mounts without a file system type: the wrapped mounter's.
	for _, tc := range []struct {
		source, fsType string
		opts           []string
	}{
		{d.Dev, "ext4", []string{"nofail"}},
		{dir, "", []string{"bind"}},
		{d.Dev, "", nil},
		{d.Dev, "ext4", []string{"noatime,shared"}}, // joined: still seen
		{"none", "tmpfs", nil},                      // not a block device
	} {
		wrapped.ResetLog()
		if err := m.Mount(tc.source, target, tc.fsType, tc.opts); err != nil {
			t.Fatalf("%v: %v", tc, err)
		}
		if log := wrapped.GetLog(); len(log) != 1 || log[0].Action != mount.FakeActionMount {
			t.Errorf("%v: the wrapped mounter saw %v, want the mount", tc, log)
		}
		if mi, _ := mountAt(target); mi != nil {
			t.Errorf("%v: mounted by mount(2) too: %v", tc, mi)
		}
	}
}

// mountAt is the mount at path in this process's mount table, or nil.
func mountAt(path string) (*mount.MountInfo, error) {
	infos, err := mount.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for i := range infos {
		if strings.TrimSuffix(infos[i].MountPoint, "/") == path {
			return &infos[i], nil
		}
	}
	return nil, nil
}
