package device

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blankRange is a range Blank reads: off bytes from the device's start, or
// from its end when fromEnd (the range then starts off bytes before it).
type blankRange struct {
	off, n  int64
	fromEnd bool
}

// blankRanges cover every byte libblkid (util-linux 2.38 to 2.43) reads
// at a fixed place when it probes for file systems, RAID, LVM, crypto and
// partition tables (blkid -p), each with at least 60 KiB to spare
// (blank_test.go lists them); reads at offsets taken from the device's
// content only follow a signature found in these. From the start: everything up to 512 KiB (ZFS's second label,
// xfs_log, UFS, LUKS2's nearer secondary headers and all the rest), VMFS
// volume at 1 MiB, VMFS and bcachefs at 2 MiB, LUKS2's farthest secondary
// header at 4 MiB (512 bytes). From the end: everything within 768 KiB
// (ZFS's last labels, Linux RAID, DDF, the backup GPT header and the other
// RAID formats; read to 832 KiB), bcachefs's backup at 1 MiB, Promise FastTrack at 3087
// sectors (about 1.51 MiB). Zoned block devices (btrfs keeps superblocks
// in zones further in; virtio-blk can be zoned) are never called blank.
var blankRanges = []blankRange{
	{0, 768 << 10, false},
	{960 << 10, 128 << 10, false},  // 1 MiB
	{1984 << 10, 128 << 10, false}, // 2 MiB
	{4032 << 10, 128 << 10, false}, // 4 MiB
	{832 << 10, 832 << 10, true},
	{1088 << 10, 128 << 10, true}, // 1 MiB before the end
	{1664 << 10, 192 << 10, true}, // 3087 sectors before the end
}

// Blank reports whether dev reads as zeros in every range where blkid
// looks for a signature (blankRanges): such a device holds nothing blkid
// could name, so stage formats it without running blkid (a process per
// stage: about 60 ms in a small guest, half of a stage's time on a loop
// device). Any other answer, a read error included, means "not known
// blank": the caller asks blkid, which names what is there. A device too
// small to hold a range (under 5 MiB) is never known blank.
func Blank(dev string) (bool, error) {
	// O_DIRECT: the ranges are read once and not kept; through the page
	// cache they cost five times as much on a loop device. Files on tmpfs
	// (tests) refuse it and are read through the cache.
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer unix.Close(fd)
	if zoned(fd) {
		return false, nil
	}
	size, err := unix.Seek(fd, 0, io.SeekEnd)
	if err != nil {
		return false, fmt.Errorf("size of %s: %w", dev, err)
	}
	buf := blankBuffers.Get().(*[]byte)
	defer blankBuffers.Put(buf)
	for _, r := range blankRanges {
		off := r.off
		if r.fromEnd {
			off = size - r.off
		}
		if off < 0 || off+r.n > size {
			return false, nil
		}
		// Offsets and lengths are multiples of 64 KiB, from the start or
		// from the end (a multiple of the sector size): as O_DIRECT wants.
		for end := off + r.n; off < end; {
			got, err := unix.Pread(fd, (*buf)[:min(end-off, int64(len(*buf)))], off)
			if err != nil {
				return false, fmt.Errorf("reading %s at %d: %w", dev, off, err)
			}
			if got == 0 {
				return false, nil // the device shrank under us
			}
			if !allZero((*buf)[:got]) {
				return false, nil
			}
			off += int64(got)
		}
	}
	return true, nil
}

// zoned reports whether fd is a zoned block device (its sysfs
// queue/zoned says other than "none"; a kernel without the file has none).
func zoned(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/queue/zoned", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	return err == nil && strings.TrimSpace(string(b)) != "none"
}

// blankBuffers hold Blank's reads, kept because faulting in fresh pages
// for each stage costs more than the reads. Each is page-aligned, as
// O_DIRECT wants.
var blankBuffers = sync.Pool{New: func() any {
	const size, page = 256 << 10, 4096
	b := make([]byte, size+page)
	skip := (page - int(uintptr(unsafe.Pointer(&b[0]))%page)) % page
	b = b[skip : skip+size]
	return &b
}}

var zeroPage = make([]byte, 4096)

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
