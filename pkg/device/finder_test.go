package device

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// tree is a fake /dev, /sys and by-id dir. Device nodes are real block
// special files (mknod, root only) with unused major numbers, so the finder's
// stat and device-number checks run for real.
type tree struct {
	by, sys, dev string
	minor        uint32
}

const fakeMajor = 240 // "local/experimental use" range: never a real driver

// newTree needs no root; disk does (mknod).
func newTree(t *testing.T) *tree {
	t.Helper()
	root := t.TempDir()
	tr := &tree{by: filepath.Join(root, "by-id"), sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	for _, d := range []string{tr.by, filepath.Join(tr.sys, "block"), tr.dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// disk adds a block device with sysfs attributes; attrs maps a relative
// sysfs path (serial, loop/backing_file) to its content.
func (tr *tree) disk(t *testing.T, name string, size int64, attrs map[string]string) {
	t.Helper()
	testenv.RequireRoot(t, "mknod of block device nodes")
	tr.minor++
	num := unix.Mkdev(fakeMajor, tr.minor)
	if err := unix.Mknod(filepath.Join(tr.dev, name), unix.S_IFBLK|0o600, int(num)); err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(tr.sys, "block", name)
	files := map[string]string{
		"dev":  fmt.Sprintf("%d:%d\n", fakeMajor, tr.minor),
		"size": fmt.Sprintf("%d\n", size/512),
	}
	for k, v := range attrs {
		files[k] = v
	}
	for k, v := range files {
		p := filepath.Join(sys, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (tr *tree) link(t *testing.T, driveUUID, target string) {
	t.Helper()
	if err := os.Symlink(target, filepath.Join(tr.by, virtio.ByIDName(driveUUID))); err != nil {
		t.Fatal(err)
	}
}

// links lists the by-id dir: name -> link target ("" for a non-link).
func (tr *tree) links(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(tr.by)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Name()], _ = os.Readlink(filepath.Join(tr.by, e.Name()))
	}
	return out
}

func (tr *tree) finder(trigger func(context.Context, string) error) *VirtioFinder {
	if trigger == nil {
		trigger = NoTrigger
	}
	return &VirtioFinder{ByIDDir: tr.by, SysDir: tr.sys, DevDir: tr.dev, Trigger: trigger,
		Timeout: 300 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

const gib = int64(1) << 30

func TestVirtioFinder(t *testing.T) {
	other := "0f1e2d3c-4b5a-4968-8776-655443322110"
	cases := []struct {
		name     string
		setup    func(t *testing.T, tr *tree, id string)
		wantSize int64
		wantDev  string // basename of the device found
		wantErr  error
		errHas   []string // substrings the error must name; {serial}, {id}: the drive's
		simGuest bool     // the by-id dir holds the simulator's marker
	}{{
		name: "link to the right serial",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(id)})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantSize: gib, wantDev: "vdb",
	}, {
		name: "serial padded with NULs and newline",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(id) + "\x00\x00\n"})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantDev: "vdb",
	}, {
		name: "missing link: found by a sysfs scan",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vda", gib, map[string]string{"serial": "boot-disk"})
			tr.disk(t, "vdc", gib, map[string]string{"serial": virtio.Serial(id)})
		},
		wantSize: gib, wantDev: "vdc",
	}, {
		name: "wrong serial behind the link is refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(other)})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantErr: ErrIdentity, errHas: []string{"vdb", virtio.Serial(other)},
	}, {
		name: "stale link: the proven device wins",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(other)})
			tr.disk(t, "vdd", gib, map[string]string{"serial": virtio.Serial(id)})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantDev: "vdd",
	}, {
		name: "two candidates refused naming both",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(id)})
			tr.disk(t, "vdc", gib, map[string]string{"serial": virtio.Serial(id)})
		},
		wantErr: ErrAmbiguous, errHas: []string{"vdb", "vdc"},
	}, {
		name: "link to a smaller device refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib/2, map[string]string{"serial": virtio.Serial(id)})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantSize: gib, wantErr: ErrSize, errHas: []string{"536870912"},
	}, {
		name: "larger device accepted (grown offline)",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", 2*gib, map[string]string{"serial": virtio.Serial(id)})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantSize: gib, wantDev: "vdb",
	}, {
		name: "device without identity refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "sdb", gib, nil)
			tr.link(t, id, filepath.Join(tr.dev, "sdb"))
		},
		wantErr: ErrIdentity, errHas: []string{"sdb has no serial"},
	}, {
		name: "device without identity refused in the simulator's guest",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "sdb", gib, nil)
			tr.link(t, id, filepath.Join(tr.dev, "sdb"))
		},
		simGuest: true, wantErr: ErrIdentity, errHas: []string{"neither a serial nor a loop backing file"},
	}, {
		name: "link to a regular file refused",
		setup: func(t *testing.T, tr *tree, id string) {
			p := filepath.Join(tr.dev, "notadisk")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			tr.link(t, id, p)
		},
		wantErr: ErrIdentity, errHas: []string{"not a block device"},
	}, {
		name: "stale node with another device number refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(id), "dev": "252:16\n"})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		wantErr: ErrIdentity, errHas: []string{"252:16"},
	}, {
		name: "simulator's guest: loop device backed by the drive's image",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + id + ".img\n"})
		},
		simGuest: true, wantSize: gib, wantDev: "loop3",
	}, {
		name: "simulator's guest: loop device behind the drive's link",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + id + ".img\n"})
			tr.link(t, id, filepath.Join(tr.dev, "loop3"))
		},
		simGuest: true, wantSize: gib, wantDev: "loop3",
	}, {
		name: "simulator's guest: loop device of another drive refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + other + ".img\n"})
			tr.link(t, id, filepath.Join(tr.dev, "loop3"))
		},
		simGuest: true, wantErr: ErrIdentity, errHas: []string{other},
	}, {
		name: "simulator's guest: loop backed by a file sharing only the serial prefix refused",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "loop4", gib, map[string]string{"loop/backing_file": "/sim/" + virtio.Serial(id) + "ffff-ffffffffffff.img"})
		},
		simGuest: true, wantErr: ErrNotFound,
	}, {
		// The default: a loop device is no drive, whatever its backing file.
		name: "loop device backed by the drive's image refused without the marker",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "vda", gib, map[string]string{"serial": "boot-disk"})
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + id + ".img\n"})
		},
		wantErr: ErrNotFound, errHas: []string{"loop3", "{id}.img", virtio.EmulatedGuestMarker, `serial "{serial}"`},
	}, {
		name: "loop device behind the drive's link refused without the marker",
		setup: func(t *testing.T, tr *tree, id string) {
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + id + ".img\n"})
			tr.link(t, id, filepath.Join(tr.dev, "loop3"))
		},
		wantErr: ErrIdentity, errHas: []string{"loop3 has no serial", virtio.EmulatedGuestMarker},
	}, {
		name: "a link named like the marker does not make a guest",
		setup: func(t *testing.T, tr *tree, id string) {
			marker := filepath.Join(tr.dev, "marker")
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(marker, filepath.Join(tr.by, virtio.EmulatedGuestMarker)); err != nil {
				t.Fatal(err)
			}
			tr.disk(t, "loop3", gib, map[string]string{"loop/backing_file": "/var/lib/sim/" + id + ".img\n"})
		},
		wantErr: ErrNotFound, errHas: []string{virtio.EmulatedGuestMarker},
	}, {
		name:    "nothing attached",
		setup:   func(t *testing.T, tr *tree, id string) {},
		wantErr: ErrNotFound, errHas: []string{"virtio-{serial}", `serial "{serial}"`},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t)
			id := uuid.NewString()
			if tc.simGuest {
				if err := virtio.DeclareEmulatedGuest(tr.by); err != nil {
					t.Fatal(err)
				}
			}
			tc.setup(t, tr, id)
			links := tr.links(t)
			dev, err := tr.finder(nil).Find(context.Background(), id, tc.wantSize)
			// One look gives the same answer on a tree that does not change.
			if dev2, err2 := tr.finder(nil).FindNow(context.Background(), id, tc.wantSize); dev2 != dev || (err2 == nil) != (err == nil) {
				t.Errorf("FindNow = %q, %v; Find = %q, %v", dev2, err2, dev, err)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Find = %q, %v; want error %v", dev, err, tc.wantErr)
				}
				if dev != "" {
					t.Errorf("Find returned device %q together with an error", dev)
				}
				for _, s := range tc.errHas {
					s = strings.NewReplacer("{serial}", virtio.Serial(id), "{id}", id).Replace(s)
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
			} else if err != nil || dev != filepath.Join(tr.dev, tc.wantDev) {
				t.Fatalf("Find = %q, %v; want %s", dev, err, filepath.Join(tr.dev, tc.wantDev))
			}
			// udev's directory is udev's: the finder never writes there,
			// so it can leave no stale link behind.
			if got := tr.links(t); !maps.Equal(got, links) {
				t.Errorf("by-id dir changed from %v to %v", links, got)
			}
		})
	}
}

// udevLog is a counting fake Trigger: it records the devices udev was
// asked about, and runs on (when set) as udev would react.
type udevLog struct {
	mu    sync.Mutex
	names []string
	on    func(name string)
}

func (l *udevLog) trigger(_ context.Context, name string) error {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	if l.on != nil {
		l.on(name)
	}
	return nil
}

func (l *udevLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.names)
}

// A hot-plugged device shows up in sysfs only after a few tries. The finder
// waits for it without asking udev anything: a device the kernel has not
// announced yet is not udev's to re-announce.
func TestVirtioFinderDeviceAppearsLate(t *testing.T) {
	tr := newTree(t)
	id := uuid.NewString()
	tr.disk(t, "vda", gib, map[string]string{"serial": "boot-disk"})
	tr.disk(t, "vde", gib, map[string]string{"serial": virtio.Serial(id)})
	tr.link(t, id, filepath.Join(tr.dev, "vde"))
	entry, hidden := filepath.Join(tr.sys, "block", "vde"), filepath.Join(tr.sys, "vde.hotplug")
	if err := os.Rename(entry, hidden); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		if err := os.Rename(hidden, entry); err != nil {
			t.Error(err)
		}
	}()
	udev := &udevLog{}
	f := tr.finder(udev.trigger)
	f.Timeout = 5 * time.Second
	dev, err := f.Find(context.Background(), id, gib)
	if err != nil || dev != filepath.Join(tr.dev, "vde") {
		t.Fatalf("Find = %q, %v; want vde", dev, err)
	}
	if got := udev.got(); len(got) != 0 {
		t.Errorf("udev triggered for %v while the device was not in sysfs", got)
	}
}

// udev is asked about one device only, the one the finder has a reason to
// look at, and only by Find: FindNow (stats, health) never triggers.
func TestVirtioFinderTriggersOnlyTheCandidate(t *testing.T) {
	other := "0f1e2d3c-4b5a-4968-8776-655443322110"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, tr *tree, id string, udev *udevLog)
		ok    bool   // Find succeeds
		want  string // the only device udev may be asked about
	}{{
		name: "stale link: the device it points to",
		setup: func(t *testing.T, tr *tree, id string, _ *udevLog) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(other)})
			tr.disk(t, "vdc", gib, map[string]string{"serial": "boot-disk"})
			tr.link(t, id, filepath.Join(tr.dev, "vdb"))
		},
		want: "vdb",
	}, {
		name: "found without a link: the found device, for its link",
		setup: func(t *testing.T, tr *tree, id string, _ *udevLog) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": "boot-disk"})
			tr.disk(t, "vdc", gib, map[string]string{"serial": virtio.Serial(id)})
		},
		ok: true, want: "vdc",
	}, {
		name: "device node missing until udev handles the device",
		setup: func(t *testing.T, tr *tree, id string, udev *udevLog) {
			tr.disk(t, "vdb", gib, map[string]string{"serial": "boot-disk"})
			tr.disk(t, "vdd", gib, map[string]string{"serial": virtio.Serial(id)})
			node := filepath.Join(tr.dev, "vdd")
			var st unix.Stat_t
			if err := unix.Stat(node, &st); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(node); err != nil {
				t.Fatal(err)
			}
			udev.on = func(name string) {
				if name == "vdd" {
					_ = unix.Mknod(node, unix.S_IFBLK|0o600, int(st.Rdev))
				}
			}
		},
		ok: true, want: "vdd",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, now := range []bool{false, true} {
				tr := newTree(t)
				id := uuid.NewString()
				udev := &udevLog{}
				tc.setup(t, tr, id, udev)
				f := tr.finder(udev.trigger)
				find := f.Find
				if now {
					find = f.FindNow
				}
				dev, err := find(context.Background(), id, 0)
				got := udev.got()
				if now {
					if len(got) != 0 {
						t.Errorf("FindNow triggered udev for %v", got)
					}
					continue
				}
				if (err == nil) != tc.ok {
					t.Errorf("Find = %q, %v; want success %t", dev, err, tc.ok)
				}
				if len(got) == 0 {
					t.Errorf("udev never asked about %s", tc.want)
				}
				for _, name := range got {
					if name != tc.want {
						t.Errorf("udev triggered for %v, want only %s", got, tc.want)
						break
					}
				}
			}
		})
	}
}

// Retries stop at the caller's deadline, not the finder's longer timeout,
// and a refusal that cannot heal (two candidates) is not retried at all.
func TestVirtioFinderStops(t *testing.T) {
	tr := newTree(t)
	f := tr.finder(nil)
	f.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Find(ctx, uuid.NewString(), 0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find: %v, want ErrNotFound", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Find took %s with a 200ms deadline", took)
	}

	id := uuid.NewString()
	tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(id)})
	tr.disk(t, "vdc", gib, map[string]string{"serial": virtio.Serial(id)})
	udev := &udevLog{}
	f.Trigger = udev.trigger
	if _, err := f.Find(context.Background(), id, 0); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Find: %v, want ErrAmbiguous", err)
	}
	if got := udev.got(); len(got) != 0 {
		t.Errorf("ambiguity was retried, triggering %v", got)
	}
}

// The error names the time the tries actually took, not the finder's
// Timeout: a caller's deadline (a quick lookup's, a kubelet's) usually ends
// the wait first. Needs no root: nothing is attached.
func TestVirtioFinderErrorNamesTimeSpent(t *testing.T) {
	spentIn := func(t *testing.T, err error) time.Duration {
		t.Helper()
		m := regexp.MustCompile(`after \d+ tries in (\S+?)[: ]`).FindStringSubmatch(fmt.Sprint(err))
		if m == nil {
			t.Fatalf("error %q names no time spent", err)
		}
		d, perr := time.ParseDuration(m[1])
		if perr != nil {
			t.Fatalf("error %q: %v", err, perr)
		}
		return d
	}
	t.Run("caller's deadline", func(t *testing.T) {
		f := newTree(t).finder(nil)
		f.Timeout = 30 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		_, err := f.Find(ctx, uuid.NewString(), 0)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Find: %v, want ErrNotFound", err)
		}
		if d := spentIn(t, err); d < 100*time.Millisecond || d > 5*time.Second {
			t.Errorf("error %q says %s, want about the 150ms really spent", err, d)
		}
		if strings.Contains(err.Error(), "30s") || !strings.Contains(err.Error(), "caller's deadline") {
			t.Errorf("error %q should blame the caller's deadline, not quote the 30s timeout", err)
		}
	})
	t.Run("own timeout", func(t *testing.T) {
		f := newTree(t).finder(nil)
		f.Timeout = 200 * time.Millisecond
		_, err := f.Find(context.Background(), uuid.NewString(), 0)
		if d := spentIn(t, err); d < 150*time.Millisecond || d > 5*time.Second {
			t.Errorf("error %q says %s, want about the 200ms really spent", err, d)
		}
		if strings.Contains(err.Error(), "caller's deadline") {
			t.Errorf("error %q blames a deadline the caller did not set", err)
		}
	})
}

func TestVirtioFinderRejectsMalformedUUID(t *testing.T) {
	f := &VirtioFinder{Trigger: NoTrigger}
	for _, id := range []string{"", "vol-1", "../../etc/passwd", "{" + uuid.NewString() + "}"} {
		if _, err := f.Find(context.Background(), id, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find(%q) = %v, want ErrNotFound", id, err)
		}
	}
}
