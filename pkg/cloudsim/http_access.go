package cloudsim

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate checks HTTP Basic (and the optional bearer token, which the
// upload endpoint does not accept: the manual says Basic only there).
func (a *api) authenticate(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return newErr(http.StatusUnauthorized, "permission", "", "Authentication credentials were not provided.")
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if eq(user, a.username) && eq(pass, a.password) {
			return nil
		}
		return newErr(http.StatusUnauthorized, "permission", "", "Invalid username or password.")
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && a.token != "" && !isUpload(r.URL.Path) {
		if eq(strings.TrimSpace(tok), a.token) {
			return nil
		}
	}
	return newErr(http.StatusUnauthorized, "permission", "", "Invalid credentials.")
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// checkAccept answers 406 when the Accept header names neither JSON nor a
// wildcard (manual 2.12).
func checkAccept(r *http.Request) *apiError {
	acc := r.Header.Get("Accept")
	if acc == "" {
		return nil
	}
	for _, part := range strings.Split(acc, ",") {
		mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		switch mt {
		case "application/json", "*/*", "application/*":
			return nil
		}
	}
	if isDownload(r.URL.Path) || isUpload(r.URL.Path) {
		return nil
	}
	return newErr(http.StatusNotAcceptable, "validation", "", "Unsupported Accept header %q", acc)
}

func isUpload(p string) bool { return strings.HasPrefix(p, apiPrefix+"drives/upload/") }

func isDownload(p string) bool {
	return strings.HasPrefix(p, apiPrefix+"drives/") && strings.HasSuffix(p, "/download/")
}
