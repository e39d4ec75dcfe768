package device

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sparse makes a file of size bytes, zero but for one byte at each offset.
func sparse(t *testing.T, size int64, nonZeroAt ...int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range nonZeroAt {
		if _, err := f.WriteAt([]byte{1}, off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Where libblkid reads at fixed places, farthest first (util-linux 2.38
// to 2.43): a byte there makes a device not blank. Negative offsets count
// from the end.
var blkidReads = map[string]int64{
	"LUKS2 secondary header at 4 MiB (512 bytes)":    4<<20 + 511,
	"bcachefs at 2 MiB + 24":                         2<<20 + 24 + 15,
	"VMFS at 2 MiB (a 1 KiB block in 2.38)":          2<<20 + 1023,
	"VMFS volume at 1 MiB":                           1 << 20,
	"ZFS second label, up to 512 KiB":                512<<10 - 1,
	"UFS at 256 KiB":                                 256 << 10,
	"ext4 superblock":                                1024 + 56,
	"Promise FastTrack, 3087 sectors before the end": -3087 * 512,
	"bcachefs backup, 1 MiB before the end + 24":     -(1 << 20) + 24,
	"ZFS last labels, up to 768 KiB before the end":  -(768 << 10),
	"DDF, 257 sectors before the end":                -257 * 512,
	"Linux RAID 0.90, up to 128 KiB before the end":  -(128 << 10),
	"backup GPT header, last sector":                 -512,
}

func TestBlankReadsWhereBlkidLooks(t *testing.T) {
	const size = 64 << 20
	at := func(off int64) int64 {
		if off < 0 {
			return size + off
		}
		return off
	}
	for what, off := range blkidReads {
		if got, err := Blank(sparse(t, size, at(off))); got || err != nil {
			t.Errorf("%s (byte %d): Blank = %t, %v; want false", what, at(off), got, err)
		}
	}
	for _, r := range blankRanges {
		first := r.off
		if r.fromEnd {
			first = size - r.off
		}
		for _, b := range []int64{first, first + r.n - 1} {
			if got, err := Blank(sparse(t, size, b)); got || err != nil {
				t.Errorf("range %+v, byte %d: Blank = %t, %v; want false", r, b, got, err)
			}
		}
	}
	if got, err := Blank(sparse(t, size)); !got || err != nil {
		t.Errorf("all zeros: Blank = %t, %v; want true", got, err)
	}
	// Data where blkid never looks: blkid calls such a device blank too.
	if got, err := Blank(sparse(t, size, 768<<10, 3<<20, size/2, size-(2<<20))); !got || err != nil {
		t.Errorf("data between the ranges only: Blank = %t, %v; want true", got, err)
	}
	// Too small for the ranges: never known blank.
	if got, err := Blank(sparse(t, 4<<20)); got || err != nil {
		t.Errorf("4 MiB of zeros: %t %v, want false (too small to tell)", got, err)
	}
	if got, err := Blank(filepath.Join(t.TempDir(), "missing")); got || err == nil {
		t.Errorf("a missing device: %t %v, want false and an error", got, err)
	}
}

// What the tools that make signatures leave on a device is never blank.
func TestBlankSeesRealSignatures(t *testing.T) {
	const size = 512 << 20 // mkfs.xfs wants more than 300 MB
	for _, tc := range []struct {
		tool string
		args []string
	}{
		{"mkfs.ext4", []string{"-q", "-F"}},
		{"mkfs.xfs", []string{"-q", "-f"}},
		{"mkswap", nil},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Fatalf("%s is needed (hack/install-tools.sh installs it): %v", tc.tool, err)
			}
			p := sparse(t, size)
			if out, err := exec.Command(tc.tool, append(tc.args, p)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", tc.tool, err, out)
			}
			if got, err := Blank(p); got || err != nil {
				t.Fatalf("after %s: Blank = %t, %v", tc.tool, got, err)
			}
		})
	}
}
