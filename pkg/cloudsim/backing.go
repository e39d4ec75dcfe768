package cloudsim

import (
	"errors"
	"io"
	"os"
)

// Backing files are sparse: a drive costs only the bytes written to it, so
// tests can use realistic sizes (the dssd minimum is 512 MiB).

// sparseBlock is the unit in which all-zero data is skipped.
const sparseBlock = 64 << 10

// errNoExtents: the platform or file system cannot report data extents.
var errNoExtents = errors.New("data extents not supported")

func createBacking(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// growBacking extends a backing file; it never shrinks one.
func growBacking(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	return os.Truncate(path, size)
}

// copySparseTo replaces the file at dst with the first size bytes of src,
// keeping holes (like cp --sparse=always).
func copySparseTo(src *os.File, dst string, size int64) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = copyExtents(out, src, size)
	if errors.Is(err, errNoExtents) {
		_, err = writeSparseAt(out, io.NewSectionReader(src, 0, size), 0)
	}
	if err == nil {
		err = out.Truncate(size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeSparseAt writes r into dst from offset base, seeking over all-zero
// blocks instead of writing them. It returns the bytes read from r.
func writeSparseAt(dst *os.File, r io.Reader, base int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, rerr := io.ReadFull(r, buf)
		for off := 0; off < m; off += sparseBlock {
			blk := buf[off:min(off+sparseBlock, m)]
			if allZero(blk) {
				continue
			}
			if _, err := dst.WriteAt(blk, base+n+int64(off)); err != nil {
				return n, err
			}
		}
		n += int64(m)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
