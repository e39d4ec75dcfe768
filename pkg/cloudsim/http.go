package cloudsim

import (
	"bufio"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// recorder remembers the status for the call log and passes Hijack through
// so connection-reset faults work.
// recorder notes the status and calls onStatus before the response leaves,
// so a client that has its answer always finds the call in the log.
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	onStatus func(status int)
}

func (r *recorder) setStatus(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
		if r.onStatus != nil {
			r.onStatus(code)
		}
	}
}

func (r *recorder) WriteHeader(code int) {
	r.setStatus(code)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.setStatus(http.StatusOK)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// authenticate checks HTTP Basic (and the optional bearer token, which the
// upload endpoint does not accept: the manual says Basic only there).
func (s *Sim) authenticate(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return newErr(http.StatusUnauthorized, "permission", "", "Authentication credentials were not provided.")
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if eq(user, s.cfg.Username) && eq(pass, s.cfg.Password) {
			return nil
		}
		return newErr(http.StatusUnauthorized, "permission", "", "Invalid username or password.")
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && s.cfg.Token != "" && !isUpload(r.URL.Path) {
		if eq(strings.TrimSpace(tok), s.cfg.Token) {
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

// route dispatches below /api/2.0/. Like Django's APPEND_SLASH, a GET
// without the trailing slash is redirected; other methods get 404.
func (s *Sim) route(w http.ResponseWriter, r *http.Request) *apiError {
	rest := strings.TrimPrefix(r.URL.Path, apiPrefix)
	if isUpload(r.URL.Path) {
		return s.handleUpload(w, r)
	}
	if !strings.HasSuffix(rest, "/") {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			target := r.URL.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return nil
		}
		return errNotExist("No resource at %s", r.URL.Path)
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	switch parts[0] {
	case "drives":
		return s.routeDrives(w, r, parts[1:])
	case "snapshots":
		return s.routeSnapshots(w, r, parts[1:])
	case "servers":
		return s.routeServers(w, r, parts[1:])
	case "jobs":
		return s.routeJobs(w, r, parts[1:])
	case "tags":
		return s.routeTags(w, r, parts[1:])
	case "capabilities":
		if len(parts) == 1 {
			return s.handleCapabilities(w, r)
		}
	}
	return errNotExist("No resource at %s", r.URL.Path)
}

// action returns the ?do= of an action URL, requiring POST.
func action(r *http.Request) (string, *apiError) {
	if r.Method != http.MethodPost {
		return "", errMethod(r.Method, "POST")
	}
	do := r.URL.Query().Get("do")
	if do == "" {
		return "", errValidation("do", "Missing action")
	}
	return do, nil
}

// serveOptions answers OPTIONS the way manual 2.11 shows: 200 with the
// comma-separated methods the URL supports as the body (and in Allow). The
// manual's example carries no credentials, so none are required. The
// methods are found by routing the request itself: every route refuses an
// unknown method with a 405 naming the allowed ones before doing anything.
func (s *Sim) serveOptions(w http.ResponseWriter, r *http.Request) {
	e := s.route(&discardWriter{h: http.Header{}}, r)
	if e == nil || e.Status != http.StatusMethodNotAllowed || e.Allow == "" {
		if e == nil {
			e = errNotExist("No resource at %s", r.URL.Path)
		}
		writeError(w, e)
		return
	}
	w.Header().Set("Allow", e.Allow)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(e.Allow))
}
