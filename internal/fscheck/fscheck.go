// Package fscheck holds the filesystem checks the demo and the end-to-end
// suite share: write data so a snapshot taken next holds it, and read the
// size a filesystem reports the way a user would (df).
package fscheck

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// WriteSynced writes a file and flushes it and its filesystem to the
// device, so a snapshot or clone of the drive taken next holds it.
func WriteSynced(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return exec.Command("sync", "-f", path).Run()
}

// Size is the size in bytes of the filesystem holding path, as df reports it.
func Size(path string) (int64, error) {
	out, err := exec.Command("df", "--block-size=1", "--output=size", path).Output()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	return strconv.ParseInt(f[len(f)-1], 10, 64)
}
