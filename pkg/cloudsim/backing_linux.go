package cloudsim

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// lseek whences for data extents (Linux values).
const (
	seekData = 3
	seekHole = 4
)

// copyExtents copies only the data extents of src below size into dst.
func copyExtents(dst, src *os.File, size int64) error {
	var off int64
	for off < size {
		data, err := src.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return nil // only a hole remains
		}
		if err != nil {
			if off == 0 {
				return errNoExtents
			}
			return err
		}
		if data >= size {
			return nil
		}
		hole, err := src.Seek(data, seekHole)
		if err != nil || hole > size {
			hole = size
		}
		if _, err := writeSparseAt(dst, io.NewSectionReader(src, data, hole-data), data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}
