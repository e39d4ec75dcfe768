package cloudsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"
)

// downloadPrefix is where GET /drives/{uuid}/download/ redirects to, like
// the real API's hand-off to a download host; the token is the credential.
const downloadPrefix = "/sim-download/"

// downloadTTL bounds how long a download URL stays valid.
const downloadTTL = 10 * time.Minute

type download struct {
	drive   string
	expires time.Time
}

func downloadToken(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, downloadPrefix)
	if !ok {
		return "", false
	}
	token, _, _ := strings.Cut(rest, "/")
	return token, token != ""
}

// handleUpload creates a drive from a raw image (manual ch. 10). The
// Content-Length is the drive size (so chunked bodies are refused), raised
// to the storage type's minimum; the answer is the new UUID as plain text.
func (s *Sim) handleUpload(w http.ResponseWriter, r *http.Request) *apiError {
	if r.Method != http.MethodPost {
		return errMethod(r.Method, "POST")
	}
	if r.ContentLength < 0 {
		return newErr(http.StatusLengthRequired, "validation", "", "Content-Length is required: it sets the drive size")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/octet-stream" {
		return errValidation("", "Content-Type must be application/octet-stream, got %q", r.Header.Get("Content-Type"))
	}
	st := s.caps.DefaultStorageType
	lim := s.caps.Drives[st]
	if r.ContentLength > lim.Max {
		return errValidation("size", "Image of %d bytes is larger than the maximum drive size %d", r.ContentLength, lim.Max)
	}
	size := max(roundSize(r.ContentLength), lim.Min)
	now := time.Now().UTC()
	s.mu.Lock()
	d, e := s.newDrive(driveSpec{
		name: "Upload " + now.Format("2006-01-02 15:04:05"), media: "disk", size: size,
		storageType: st, storageTypeGiven: true, meta: map[string]string{},
	}, stCreating)
	s.mu.Unlock()
	if e != nil {
		return e
	}
	n, err := s.receive(d.uuid, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && n != r.ContentLength {
		err = errShort
	}
	if err != nil {
		if post := s.vanishDrive(d.uuid); post != nil {
			go post()
		}
		return errValidation("", "Upload incomplete after %d of %d bytes: %v", n, r.ContentLength, err)
	}
	if size > roundSize(r.ContentLength) {
		// Smaller than the minimum: resized on upload completion.
		d.op = stResizing
		s.after(s.cfg.Delays.Resize, s.settle(d.uuid, stResizing, nil))
	} else {
		d.op = ""
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(d.uuid))
	return nil
}

var errShort = errors.New("body shorter than Content-Length")

func (s *Sim) receive(id string, r *http.Request) (int64, error) {
	f, err := os.OpenFile(s.drivePath(id), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := writeSparseAt(f, r.Body, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// redirectDownload answers GET /drives/{uuid}/download/ with a redirect to
// a short-lived URL: clients must follow redirects (manual 10.2).
func (s *Sim) redirectDownload(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.Lock()
	d := s.drives[id]
	if d == nil {
		s.mu.Unlock()
		return errNotExist("Drive %s does not exist", id)
	}
	if d.pending() || d.deleting {
		s.mu.Unlock()
		return d.busy()
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	for t, dl := range s.downloads {
		if now.After(dl.expires) {
			delete(s.downloads, t)
		}
	}
	s.downloads[token] = download{drive: id, expires: now.Add(downloadTTL)}
	s.mu.Unlock()
	http.Redirect(w, r, downloadPrefix+token+"/"+id, http.StatusFound)
	return nil
}

// serveDownload streams a drive's image from its backing file.
func (s *Sim) serveDownload(w http.ResponseWriter, r *http.Request, token string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, errMethod(r.Method, "GET"))
		return
	}
	s.mu.Lock()
	dl, ok := s.downloads[token]
	var d *drive
	if ok && time.Now().Before(dl.expires) {
		d = s.drives[dl.drive]
	}
	var f *os.File
	var err error
	var size int64
	if d != nil {
		size = d.size
		f, err = os.Open(s.drivePath(d.uuid))
	}
	s.mu.Unlock()
	if d == nil {
		writeError(w, errNotExist("Download link is invalid or expired"))
		return
	}
	if err != nil {
		writeError(w, newErr(http.StatusInternalServerError, "backend", "", "opening drive: %v", err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename="+dl.drive)
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, size))
}
