package cloudsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// downloadTTL bounds how long a download URL stays valid.
const downloadTTL = 10 * time.Minute

type download struct {
	drive   string
	expires time.Time
}

var errShort = errors.New("body shorter than Content-Length")

// uploadDrive creates a drive from a raw image of length bytes (manual ch.
// 10). The drive is creating while the body is written, outside the lock;
// an image smaller than the drive (raised to the storage type's minimum)
// leaves it resizing for the resize delay.
func (st *store) uploadDrive(sp driveSpec, body io.Reader, length int64) (string, *apiError) {
	d, e := st.startUpload(sp)
	if e != nil {
		return "", e
	}
	n, err := st.receive(d.uuid, body)
	if err == nil && n != length {
		err = errShort
	}
	var cleanup func()
	st.locked(func() { cleanup, e = st.finishUploadLocked(d, length, n, err) })
	cleanup()
	if e != nil {
		return "", e
	}
	return d.uuid, nil
}

func (st *store) startUpload(sp driveSpec) (*drive, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.newDriveLocked(sp, stCreating)
}

func (st *store) receive(id string, body io.Reader) (int64, error) {
	f, err := os.OpenFile(st.drivePath(id), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := writeSparseAt(f, body, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// finishUploadLocked ends an upload of n of length bytes; a failed one
// removes the drive (the returned cleanup finishes that).
func (st *store) finishUploadLocked(d *drive, length, n int64, err error) (func(), *apiError) {
	if err != nil {
		cleanup := st.vanishDriveLocked(d.uuid)
		return cleanup, errValidation("", "Upload incomplete after %d of %d bytes: %v", n, length, err)
	}
	if d.size > roundSize(length) {
		// Smaller than the minimum: resized on upload completion.
		d.op = stResizing
		st.settleAfterLocked(st.delays.Resize, d.uuid, stResizing)
	} else {
		d.op = ""
	}
	return func() {}, nil
}

// newDownload issues the token of a short-lived download URL for a drive.
func (st *store) newDownload(id string) (string, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d, e := st.driveLocked(id)
	if e != nil {
		return "", e
	}
	if d.pending() || d.deleting {
		return "", d.busy()
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	for t, dl := range st.downloads {
		if now.After(dl.expires) {
			delete(st.downloads, t)
		}
	}
	st.downloads[token] = download{drive: id, expires: now.Add(downloadTTL)}
	return token, nil
}

// openDownload opens the image a valid token names; the caller closes it.
func (st *store) openDownload(token string) (f *os.File, size int64, driveID string, e *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	dl, ok := st.downloads[token]
	var d *drive
	if ok && time.Now().Before(dl.expires) {
		d = st.drives[dl.drive]
	}
	if d == nil {
		return nil, 0, "", errNotExist("Download link is invalid or expired")
	}
	f, err := os.Open(st.drivePath(d.uuid))
	if err != nil {
		return nil, 0, "", newErr(http.StatusInternalServerError, "backend", "", "opening drive: %v", err)
	}
	return f, d.size, dl.drive, nil
}
