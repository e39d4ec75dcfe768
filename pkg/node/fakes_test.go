package node

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
	"k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// fakeNode is a node the test describes, for the decision logic without
// root: the mount table, the device nodes (a stat fake), sysfs (a temp dir),
// the finder's answers, mount(8) (mount.FakeMounter) and blkid/mkfs/fsck
// (fakeTools). Paths are real directories under a temp dir.
//
// The mount table is the test's (mountFS, mountNode), less what the service
// unmounted through the FakeMounter; mounts the service makes do not appear
// in it: tests check those in the FakeMounter.
type fakeNode struct {
	t       *testing.T
	dir     string
	sys     string
	table   []mount.MountInfo
	nodes   map[string]device.Info // fake device nodes by path
	statErr map[string]error       // stat errors by path (corrupted mounts)
	devs    map[string]string      // volume ID -> device path
	mounter *mount.FakeMounter
	tools   *fakeTools
	grown   []string // "dev path" per Resize call
	// zeros: the device.Blank seam reads the fake devices' content (blank
	// where blkid would find nothing); false: it can never tell, so blkid
	// decides.
	zeros bool
	srv   *Service
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	n := &fakeNode{t: t, dir: dir, sys: filepath.Join(dir, "sys"),
		nodes: map[string]device.Info{}, statErr: map[string]error{}, devs: map[string]string{},
		mounter: mount.NewFakeMounter(nil), tools: &fakeTools{formats: map[string]string{}}}
	srv, err := New(Config{NodeID: "node-1", Finder: fakeDevices{n},
		Mounter: &mount.SafeFormatAndMount{Interface: n.mounter, Exec: n.tools},
		Resizer: fakeResizer{n}, Mounts: fakeTable{n}, Stat: StatFunc(n.stat), SysDir: n.sys, Blank: n.blank})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	return n
}

// disk attaches volume volID as device node name with number 8:minor, a
// sparse file of size bytes (so device.Size works), present in sysfs.
func (n *fakeNode) disk(volID, name string, minor uint32, size int64) (string, uint64) {
	n.t.Helper()
	dev := n.path("dev", name)
	n.mkdir(filepath.Dir(dev))
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Truncate(dev, size); err != nil {
		n.t.Fatal(err)
	}
	rdev := unix.Mkdev(8, minor)
	n.nodes[dev] = device.Info{Block: true, Rdev: rdev}
	n.devs[volID] = dev
	n.mkdir(n.sysEntry(rdev))
	return dev, rdev
}

// rdevOf is the device number of volume volID's device.
func (n *fakeNode) rdevOf(volID string) uint64 {
	return n.nodes[n.devs[volID]].Rdev
}

// unplug removes a device from sysfs and the finder; mounts keep its number.
func (n *fakeNode) unplug(volID string, rdev uint64) {
	n.t.Helper()
	if err := os.Remove(n.sysEntry(rdev)); err != nil {
		n.t.Fatal(err)
	}
	delete(n.devs, volID)
}

func (n *fakeNode) sysEntry(rdev uint64) string {
	return filepath.Join(n.sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)))
}

func (n *fakeNode) path(parts ...string) string {
	return filepath.Join(append([]string{n.dir}, parts...)...)
}

func (n *fakeNode) mkdir(path string) string {
	n.t.Helper()
	if err := os.MkdirAll(path, 0o750); err != nil {
		n.t.Fatal(err)
	}
	return path
}

// mountFS lists a mount of the filesystem on rdev at point (a directory it
// creates), as the kernel would, and tells the FakeMounter so that cleanup
// sees a mount point.
func (n *fakeNode) mountFS(point string, rdev uint64, fsType string, ro bool) {
	n.t.Helper()
	n.mkdir(point)
	n.addMount(mount.MountInfo{Root: "/", FsType: fsType}, point, rdev, ro)
}

// mountNode lists a bind mount of device node dev (number rdev) on the file
// point: the mount carries devtmpfs's number, and stat of point says rdev.
func (n *fakeNode) mountNode(point, dev string, rdev uint64, ro bool) {
	n.t.Helper()
	n.mkdir(filepath.Dir(point))
	if err := os.WriteFile(point, nil, 0o600); err != nil {
		n.t.Fatal(err)
	}
	// Reads through the bind mount see the device: give the file its size.
	if fi, err := os.Stat(dev); err == nil {
		if err := os.Truncate(point, fi.Size()); err != nil {
			n.t.Fatal(err)
		}
	}
	n.nodes[point] = device.Info{Block: true, Rdev: rdev}
	n.addMount(mount.MountInfo{Root: "/" + filepath.Base(dev), FsType: "devtmpfs"}, point, unix.Mkdev(0, 5), ro)
}

func (n *fakeNode) addMount(m mount.MountInfo, point string, rdev uint64, ro bool) {
	m.ID, m.MountPoint, m.Source = len(n.table)+100, point, fmt.Sprintf("dev-%d:%d", unix.Major(rdev), unix.Minor(rdev))
	for _, dev := range n.devs {
		if n.nodes[dev].Rdev == rdev {
			m.Source = dev
		}
	}
	m.Major, m.Minor = int(unix.Major(rdev)), int(unix.Minor(rdev))
	m.MountOptions = []string{"rw"}
	if ro {
		m.MountOptions = []string{"ro"}
	}
	n.table = append(n.table, m)
	n.mounter.MountPoints = append(n.mounter.MountPoints, mount.MountPoint{Device: m.Source, Path: point, Type: m.FsType, Opts: m.MountOptions})
}

// corrupt makes stat of path fail as on a mount whose device is gone.
func (n *fakeNode) corrupt(path string) {
	n.statErr[path] = syscall.ENOTCONN
}

func (n *fakeNode) stat(path string) (device.Info, error) {
	path = filepath.Clean(path)
	if err, ok := n.statErr[path]; ok {
		return device.Info{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if info, ok := n.nodes[path]; ok {
		return info, nil
	}
	return device.Probe(path)
}

// mounted reports whether the FakeMounter holds a mount at path.
func (n *fakeNode) mounted(path string) bool {
	return slices.ContainsFunc(n.mounter.MountPoints, func(mp mount.MountPoint) bool { return mp.Path == path })
}

// mountsMade lists the mounts the service made, as "source target fstype".
func (n *fakeNode) mountsMade() []string {
	var out []string
	for _, a := range n.mounter.GetLog() {
		if a.Action == mount.FakeActionMount {
			out = append(out, a.Source+" "+a.Target+" "+a.FSType)
		}
	}
	return out
}

// unmounts lists the paths the service unmounted.
func (n *fakeNode) unmounts() []string {
	var out []string
	for _, a := range n.mounter.GetLog() {
		if a.Action == mount.FakeActionUnmount {
			out = append(out, a.Target)
		}
	}
	return out
}

// optsAt are the options of the FakeMounter's mount at path.
func (n *fakeNode) optsAt(path string) []string {
	for _, mp := range n.mounter.MountPoints {
		if mp.Path == path {
			return mp.Opts
		}
	}
	n.t.Fatalf("nothing mounted at %s", path)
	return nil
}

type fakeTable struct{ n *fakeNode }

func (f fakeTable) List() ([]mount.MountInfo, error) {
	var out []mount.MountInfo
	for _, m := range f.n.table {
		if f.n.mounted(m.MountPoint) {
			out = append(out, m)
		}
	}
	return out, nil
}

type fakeDevices struct{ n *fakeNode }

func (f fakeDevices) Find(_ context.Context, volID string, _ int64) (string, error) {
	if dev, ok := f.n.devs[volID]; ok {
		return dev, nil
	}
	return "", fmt.Errorf("%w: %s", device.ErrNotFound, volID)
}

func (f fakeDevices) FindNow(ctx context.Context, volID string, size int64) (string, error) {
	return f.Find(ctx, volID, size)
}

// withFinder rebuilds the service with another finder.
func (n *fakeNode) withFinder(f device.Finder) {
	n.t.Helper()
	cfg := n.srv.cfg
	cfg.Finder = f
	srv, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
}

func (n *fakeNode) blank(dev string) (bool, error) {
	if !n.zeros {
		return false, nil
	}
	n.tools.mu.Lock()
	defer n.tools.mu.Unlock()
	return n.tools.formats[dev] == "", nil
}

type fakeResizer struct{ n *fakeNode }

func (f fakeResizer) Resize(dev, path string) (bool, error) {
	f.n.grown = append(f.n.grown, dev+" "+path)
	return true, nil
}

// fakeTools answers blkid from formats (device path -> filesystem, or
// "partitions"), records mkfs in formats, and succeeds at anything else.
// A command in missing is not installed (exec's "executable file not
// found"); an mkfs given the argument rejects fails as mkfs does on an
// option it refuses (exit 1, a usage message).
type fakeTools struct {
	mu      sync.Mutex
	formats map[string]string
	ran     []string
	missing map[string]bool
	rejects string
}

func (f *fakeTools) Command(cmd string, args ...string) exec.Cmd {
	c := &testingexec.FakeCmd{CombinedOutputScript: []testingexec.FakeAction{
		func() ([]byte, []byte, error) { return f.run(cmd, args) },
	}}
	return testingexec.InitFakeCmd(c, cmd, args...)
}

func (f *fakeTools) CommandContext(_ context.Context, cmd string, args ...string) exec.Cmd {
	return f.Command(cmd, args...)
}

func (f *fakeTools) LookPath(file string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing[file] {
		return "", exec.ErrExecutableNotFound
	}
	return "/usr/sbin/" + file, nil
}

func (f *fakeTools) run(cmd string, args []string) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing[cmd] {
		return nil, nil, exec.ErrExecutableNotFound
	}
	f.ran = append(f.ran, strings.Join(append([]string{cmd}, args...), " "))
	dev := args[len(args)-1]
	if strings.HasPrefix(cmd, "mkfs.") && f.rejects != "" && slices.Contains(args, f.rejects) {
		return []byte(fmt.Sprintf("%s: invalid argument %q\nUsage: %s [options] device\n", cmd, f.rejects, cmd)), nil, testingexec.FakeExitError{Status: 1}
	}
	switch {
	case cmd == "blkid":
		switch format := f.formats[dev]; format {
		case "":
			return nil, nil, testingexec.FakeExitError{Status: 2} // nothing found
		case "partitions":
			return []byte("PTTYPE=dos\n"), nil, nil
		default:
			return []byte("TYPE=" + format + "\n"), nil, nil
		}
	case strings.HasPrefix(cmd, "mkfs."):
		f.formats[dev] = strings.TrimPrefix(cmd, "mkfs.")
	}
	return nil, nil, nil
}

// mkfsRuns lists the mkfs commands run.
func (f *fakeTools) mkfsRuns() []string { return f.runs("mkfs.") }

// runs lists the commands run whose text starts with prefix.
func (f *fakeTools) runs(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.ran {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
