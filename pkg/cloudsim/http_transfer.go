package cloudsim

import (
	"io"
	"mime"
	"net/http"
	"time"
)

// downloadPrefix is where GET /drives/{uuid}/download/ redirects to, like
// the real API's hand-off to a download host; the token is the credential.
const downloadPrefix = "/sim-download/"

// upload creates a drive from a raw image (manual ch. 10). The
// Content-Length is the drive size (so chunked bodies are refused), raised
// to the storage type's minimum; the answer is the new UUID as plain text.
func (a *api) upload(w http.ResponseWriter, r *http.Request) *apiError {
	if r.ContentLength < 0 {
		return newErr(http.StatusLengthRequired, "validation", "", "Content-Length is required: it sets the drive size")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/octet-stream" {
		return errValidation("", "Content-Type must be application/octet-stream, got %q", r.Header.Get("Content-Type"))
	}
	stype := a.caps.DefaultStorageType
	lim := a.caps.Drives[stype]
	if r.ContentLength > lim.Max {
		return errValidation("size", "Image of %d bytes is larger than the maximum drive size %d", r.ContentLength, lim.Max)
	}
	now := time.Now().UTC()
	id, e := a.st.uploadDrive(driveSpec{
		name: "Upload " + now.Format("2006-01-02 15:04:05"), media: "disk",
		size: max(roundSize(r.ContentLength), lim.Min), storageType: stype, storageTypeGiven: true,
		meta: map[string]string{},
	}, r.Body, r.ContentLength)
	if e != nil {
		return e
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(id))
	return nil
}

// redirectDownload answers GET /drives/{uuid}/download/ with a redirect to
// a short-lived URL: clients must follow redirects (manual 10.2).
func (a *api) redirectDownload(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("uuid")
	token, e := a.st.newDownload(id)
	if e != nil {
		return e
	}
	http.Redirect(w, r, downloadPrefix+token+"/"+id, http.StatusFound)
	return nil
}

// download streams a drive's image from its backing file.
func (a *api) download(w http.ResponseWriter, r *http.Request) *apiError {
	f, size, id, e := a.st.openDownload(r.PathValue("token"))
	if e != nil {
		return e
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename="+id)
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, size))
	return nil
}
