package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// Noter is a Finder that remembers the file system stage found or made on
// a drive's device (records.go): evidence for a later stage whose
// publish_context is older than that file system.
type Noter interface {
	Note(driveUUID, dev string) error
}

// readHead reads the first params.ContentProbeBytes of dev. exclusive:
// refuse a device in use (an exclusive open fails while anything, a mount
// in any namespace, swap, device mapper or md, holds it).
func readHead(dev string, exclusive bool) ([]byte, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if exclusive {
		flags |= unix.O_EXCL
	}
	fd, err := unix.Open(dev, flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, errors.New("in use")
	}
	if err != nil {
		return nil, fmt.Errorf("opening: %v", err)
	}
	file := os.NewFile(uintptr(fd), dev)
	defer file.Close()
	buf := make([]byte, params.ContentProbeBytes)
	n, err := io.ReadFull(file, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("reading: %v", err)
	}
	return buf[:n], nil
}

// head reads a candidate's first bytes unless it is in use.
func (f *VirtioFinder) head(name string) ([]byte, error) {
	if holders, _ := os.ReadDir(filepath.Join(f.sysBlock(name), "holders")); len(holders) > 0 {
		return nil, errors.New("in use (holders)")
	}
	return readHead(f.devPath(name), true)
}

// fsID names the file system whose superblock head holds
// ("ext:<uuid>": ext2/3/4 share the superblock), "xfs:<uuid>", or "" for none of
// those. Only the file systems the driver formats are read.
func fsID(head []byte) string {
	const extSB = 1024
	if len(head) >= extSB+120 && binary.LittleEndian.Uint16(head[extSB+56:]) == 0xEF53 {
		if id, err := uuid.FromBytes(head[extSB+104 : extSB+120]); err == nil && id != uuid.Nil {
			return "ext:" + id.String()
		}
	}
	if len(head) >= 48 && string(head[:4]) == "XFSB" {
		if id, err := uuid.FromBytes(head[32:48]); err == nil && id != uuid.Nil {
			return "xfs:" + id.String()
		}
	}
	return ""
}
