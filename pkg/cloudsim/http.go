package cloudsim

// Adding an endpoint is one handler plus one store method. The handler
// (http_<resource>.go) parses the request, calls the store method and
// writes the answer; the store method (store_<resource>.go) takes the lock,
// releases it by defer, and does the work. One line in routes registers
// the handler. What every endpoint shares (credentials, OPTIONS, trailing
// slashes, 404 and 405 in the API's format) is the front door's: serve.

import (
	"net/http"
	"strings"
)

// api is the HTTP face of a store.
type api struct {
	st     *store
	caps   *Capabilities // read-only
	mux    *http.ServeMux
	limits *rateLimits // nil = not enforced

	username, password, token string
}

// handlerFunc is an endpoint; a returned error is written in the API's
// error format.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func newAPI(st *store, cfg Config) *api {
	a := &api{
		st: st, caps: st.caps, mux: http.NewServeMux(),
		username: cfg.Username, password: cfg.Password, token: cfg.Token,
	}
	if cfg.EnforceRateLimits {
		a.limits = newRateLimits(cfg.RateLimitPerMinute, cfg.DeleteRateLimitPerMinute)
	}
	a.routes()
	return a
}

// routes registers every endpoint. The API's URLs end in a slash and name
// exactly one resource, hence {$} (a bare trailing slash would match the
// whole subtree).
func (a *api) routes() {
	a.handle("GET /api/2.0/capabilities/{$}", a.getCapabilities)

	a.handle("GET /api/2.0/drives/{$}", a.listDrives)
	a.handle("GET /api/2.0/drives/detail/{$}", a.listDrivesDetail)
	a.handle("POST /api/2.0/drives/{$}", a.createDrives)
	a.handle("DELETE /api/2.0/drives/{$}", a.deleteDrives)
	a.handle("GET /api/2.0/drives/{uuid}/{$}", a.getDrive)
	a.handle("PUT /api/2.0/drives/{uuid}/{$}", a.putDrive)
	a.handle("DELETE /api/2.0/drives/{uuid}/{$}", a.deleteDrive)
	a.handle("POST /api/2.0/drives/{uuid}/action/{$}", actions(map[string]handlerFunc{
		"resize": a.resizeDrive,
		"clone":  a.cloneDrive,
	}))

	// Images: upload takes an optional file name; download redirects to a
	// URL outside /api/2.0/ (token, then anything), whose token is its only
	// credential.
	a.handle("POST /api/2.0/drives/upload/{$}", a.upload)
	a.handle("POST /api/2.0/drives/upload/{name}", a.upload)
	a.handle("GET /api/2.0/drives/{uuid}/download/{$}", a.redirectDownload)
	a.handle("GET "+downloadPrefix+"{token}", a.download)
	a.handle("HEAD "+downloadPrefix+"{token}", a.download)
	a.handle("GET "+downloadPrefix+"{token}/", a.download)
	a.handle("HEAD "+downloadPrefix+"{token}/", a.download)

	a.handle("GET /api/2.0/snapshots/{$}", a.listSnapshots)
	a.handle("GET /api/2.0/snapshots/detail/{$}", a.listSnapshots)
	a.handle("POST /api/2.0/snapshots/{$}", a.createSnapshots)
	a.handle("DELETE /api/2.0/snapshots/{$}", a.deleteSnapshots)
	a.handle("GET /api/2.0/snapshots/{uuid}/{$}", a.getSnapshot)
	a.handle("PUT /api/2.0/snapshots/{uuid}/{$}", a.putSnapshot)
	a.handle("DELETE /api/2.0/snapshots/{uuid}/{$}", a.deleteSnapshot)
	a.handle("POST /api/2.0/snapshots/{uuid}/action/{$}", actions(map[string]handlerFunc{
		"clone": a.cloneSnapshot,
	}))

	a.handle("GET /api/2.0/servers/{$}", a.listServers)
	a.handle("GET /api/2.0/servers/detail/{$}", a.listServersDetail)
	a.handle("POST /api/2.0/servers/{$}", a.createServers)
	a.handle("GET /api/2.0/servers/{uuid}/{$}", a.getServer)
	a.handle("PUT /api/2.0/servers/{uuid}/{$}", a.putServer)
	a.handle("DELETE /api/2.0/servers/{uuid}/{$}", a.deleteServer)
	a.handle("POST /api/2.0/servers/{uuid}/action/{$}", a.serverAction)

	a.handle("GET /api/2.0/jobs/{$}", a.listJobs)
	a.handle("GET /api/2.0/jobs/detail/{$}", a.listJobs)
	a.handle("GET /api/2.0/jobs/{uuid}/{$}", a.getJob)

	a.handle("GET /api/2.0/tags/{$}", a.listTags)
	a.handle("GET /api/2.0/tags/detail/{$}", a.listTags)
	a.handle("POST /api/2.0/tags/{$}", a.createTags)
	a.handle("GET /api/2.0/tags/{uuid}/{$}", a.getTag)
	a.handle("PUT /api/2.0/tags/{uuid}/{$}", a.putTag)
	a.handle("DELETE /api/2.0/tags/{uuid}/{$}", a.deleteTag)
	a.handle("GET /api/2.0/tags/{uuid}/drives/{$}", a.listTagged("drives", driveFields))
	a.handle("GET /api/2.0/tags/{uuid}/servers/{$}", a.listTagged("servers", serverFields))
	a.handle("GET /api/2.0/tags/{uuid}/snapshots/{$}", a.listTagged("snapshots", snapshotFields))
}

// endpoint is a registered handler. Only an *endpoint counts as a match:
// ServeMux also hands out its own redirect, 404 and 405 handlers, whose
// answers are not the API's.
type endpoint struct {
	method   string
	literals int // literal path segments: the more, the more specific
	serve    handlerFunc
}

func (ep *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := ep.serve(w, r); e != nil {
		writeError(w, e)
	}
}

func (a *api) handle(pattern string, h handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	ep := &endpoint{method: method, serve: h}
	for _, seg := range strings.Split(path, "/") {
		if seg != "" && !strings.HasPrefix(seg, "{") {
			ep.literals++
		}
	}
	a.mux.Handle(pattern, ep)
}

// actions serves an action URL (POST .../action/?do=NAME). The API names
// the action in the query, which ServeMux patterns cannot match, so this
// table from action name to handler picks it: data, not a router.
func actions(table map[string]handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		do, e := actionName(r)
		if e != nil {
			return e
		}
		h, ok := table[do]
		if !ok {
			return errValidation("do", "Unknown action %q", do)
		}
		return h(w, r)
	}
}

func actionName(r *http.Request) (string, *apiError) {
	do := r.URL.Query().Get("do")
	if do == "" {
		return "", errValidation("do", "Missing action")
	}
	return do, nil
}

// probeMethods are the methods some endpoint serves; HEAD only downloads.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete}

// match reports the methods served on r's path (in the order the API lists
// them, for Allow and OPTIONS) and whether r's own method is one of them.
//
// ServeMux picks a pattern per method, so DELETE /drives/detail/ would
// reach DELETE /drives/{uuid}/ with "detail" as the UUID. The API does as
// Django's URL list does: a literal segment owns its URL, and /drives/detail/
// answers 405 to anything but GET. So only the methods whose pattern is
// the most literal one matching the path are served. GET patterns also
// match HEAD in ServeMux; here a method is served only where registered.
func (a *api) match(r *http.Request) (allowed []string, served bool) {
	found := map[string]*endpoint{}
	best := -1
	for _, m := range probeMethods {
		if ep := a.lookup(r, m); ep != nil {
			found[m] = ep
			best = max(best, ep.literals)
		}
	}
	for _, m := range probeMethods {
		if ep := found[m]; ep != nil && ep.literals == best {
			served = served || m == r.Method
			if m != http.MethodHead { // never advertised, as before
				allowed = append(allowed, m)
			}
		}
	}
	return allowed, served
}

// lookup finds the endpoint registered for method on r's path, nil if none
// (an unclean path or one without its trailing slash matches none).
func (a *api) lookup(r *http.Request, method string) *endpoint {
	probe := r.WithContext(r.Context()) // a shallow copy
	probe.Method = method
	h, _ := a.mux.Handler(probe)
	if ep, ok := h.(*endpoint); ok && ep.method == method {
		return ep
	}
	return nil
}

// serve is the simulated API behind the fault layer: the checks every API
// call passes in order (rate limit, OPTIONS, credentials, Accept, trailing
// slash), then the endpoint.
func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	allowed, served := a.match(r)
	if !strings.HasPrefix(r.URL.Path, apiPrefix) {
		// Only the download URLs live out here; their token is the credential.
		a.dispatch(w, r, allowed, served, errNotExist("No API at %s", r.URL.Path))
		return
	}
	if a.limits != nil && !a.limits.allow(r.Method) {
		writeError(w, newErr(http.StatusTooManyRequests, "permission", "", "Request rate limit exceeded"))
		return
	}
	if r.Method == http.MethodOptions {
		a.options(w, r, allowed)
		return
	}
	if e := a.authenticate(r); e != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="users"`)
		writeError(w, e)
		return
	}
	if e := checkAccept(r); e != nil {
		writeError(w, e)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/") && len(allowed) == 0 {
		// Like Django's APPEND_SLASH, a GET without the trailing slash is
		// redirected; other methods get 404.
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			target := r.URL.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		writeError(w, errNotExist("No resource at %s", r.URL.Path))
		return
	}
	a.dispatch(w, r, allowed, served, errNotExist("No resource at %s", r.URL.Path))
}

// dispatch serves r's endpoint, or the API's 405 or 404.
func (a *api) dispatch(w http.ResponseWriter, r *http.Request, allowed []string, served bool, notFound *apiError) {
	if served {
		a.mux.ServeHTTP(w, r)
		return
	}
	if len(allowed) > 0 {
		writeError(w, errMethod(r.Method, allowed...))
		return
	}
	writeError(w, notFound)
}

// options answers OPTIONS the way manual 2.11 shows: 200 with the
// comma-separated methods the URL supports as the body (and in Allow). The
// manual's example carries no credentials, so none are required.
func (a *api) options(w http.ResponseWriter, r *http.Request, allowed []string) {
	if len(allowed) == 0 {
		writeError(w, errNotExist("No resource at %s", r.URL.Path))
		return
	}
	methods := strings.Join(allowed, ", ")
	w.Header().Set("Allow", methods)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(methods))
}
