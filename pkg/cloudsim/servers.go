package cloudsim

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Server statuses.
const (
	srvStopped  = "stopped"
	srvStarting = "starting"
	srvRunning  = "running"
	srvStopping = "stopping"
)

// server keeps every writable field of the definition in fields, so a
// full-definition PUT can be applied the way the API applies it: fields a
// client leaves out fall back to their defaults (except meta, which a PUT
// without it keeps).
type server struct {
	seq         int64
	uuid        string
	status      string
	fields      map[string]any // writable fields except drives and tags
	tags        []string
	drives      []srvDrive
	detaching   map[string]srvDrive  // drive UUID -> entry being unplugged
	appearAt    map[string]time.Time // guest device of a drive appears late
	busy        bool                 // a PUT/start/stop is in progress
	lastPut     map[string]any
	activeSince time.Time
}

type srvDrive struct {
	drive      string // UUID
	devChannel string // "controller:unit"
	device     string // virtio or ide
	bootOrder  any    // json.Number or nil
	gen        int64  // tells one detach from a later one of the same drive
}

func (v *server) name() string { n, _ := v.fields["name"].(string); return n }

// guestLive: the server has a guest that holds its drives.
func (v *server) guestLive() bool { return v.status != srvStopped && v.status != stUnavailable }

func (v *server) entry(driveID string) (srvDrive, bool) {
	for _, e := range v.drives {
		if e.drive == driveID {
			return e, true
		}
	}
	return srvDrive{}, false
}

// serverRequired are the fields a create or PUT must carry (manual 11.4).
var serverRequired = []string{"cpu", "mem", "name", "vnc_password"}

// serverDefaults are the writable fields a definition falls back to.
func serverDefaults() map[string]any {
	return map[string]any{
		"auto_start":            false,
		"context":               true,
		"cpu_model":             nil,
		"cpu_type":              "amd",
		"cpus_instead_of_cores": false,
		"enable_numa":           false,
		"grantees":              []any{},
		"hv_relaxed":            false,
		"hv_tsc":                false,
		"hypervisor":            "kvm",
		"meta":                  map[string]any{},
		"nics":                  []any{},
		"permissions":           []any{},
		"pubkeys":               []any{},
		"requirements":          []any{},
		"smp":                   1,
	}
}

var serverFields = []string{"auto_start", "context", "cpu", "cpu_model", "cpu_type",
	"cpus_instead_of_cores", "drives", "enable_numa", "grantees", "hv_relaxed", "hv_tsc",
	"hypervisor", "is_grey", "jobs", "mem", "meta", "name", "nics", "owner", "permissions",
	"pubkeys", "requirements", "resource_uri", "runtime", "smp", "status", "tags", "uuid",
	"vnc_password"}

// parseServer reads a full server definition. Read-only fields (owner,
// status, runtime, ...) and unknown ones are ignored; absent writable
// fields take their defaults.
func parseServer(m map[string]any) (map[string]any, []string, []srvDrive, *apiError) {
	for _, f := range serverRequired {
		if v, ok := m[f]; !ok || v == nil {
			return nil, nil, nil, errValidation(f, "This field is required.")
		}
	}
	fields := serverDefaults()
	for k := range fields {
		if v, ok := m[k]; ok {
			fields[k] = deepCopy(v)
		}
	}
	for _, k := range serverRequired {
		fields[k] = deepCopy(m[k])
	}
	if _, _, e := getString(m, "name"); e != nil {
		return nil, nil, nil, e
	}
	if _, _, e := getString(m, "vnc_password"); e != nil {
		return nil, nil, nil, e
	}
	for _, k := range []string{"cpu", "mem", "smp"} {
		if n, ok, e := getInt64(m, k); e != nil {
			return nil, nil, nil, e
		} else if ok && n <= 0 {
			return nil, nil, nil, errValidation(k, "%s must be positive", k)
		}
	}
	meta, e := getMeta(m)
	if e != nil {
		return nil, nil, nil, e
	}
	mm := map[string]any{}
	for k, v := range meta {
		mm[k] = v
	}
	fields["meta"] = mm
	tags, e := getRefs(m, "tags")
	if e != nil {
		return nil, nil, nil, e
	}
	drives, e := parseServerDrives(m)
	if e != nil {
		return nil, nil, nil, e
	}
	return fields, tags, drives, nil
}

// ioStats is the per-drive runtime of a running server.
func ioStats() map[string]any {
	return map[string]any{"io": map[string]any{
		"bytes_read": 0, "bytes_written": 0, "count_flush": 0, "count_read": 0,
		"count_write": 0, "total_time_ns_flush": 0, "total_time_ns_read": 0, "total_time_ns_write": 0,
	}}
}

func (s *Sim) renderServer(v *server) map[string]any {
	out, _ := deepCopy(v.fields).(map[string]any)
	live := v.status == srvRunning
	drives := make([]any, 0, len(v.drives))
	for _, e := range v.drives {
		var rt any
		if live {
			rt = ioStats()
		}
		drives = append(drives, map[string]any{
			"boot_order": e.bootOrder, "dev_channel": e.devChannel, "device": e.device,
			"drive": ref("drives", e.drive), "runtime": rt,
		})
	}
	var runtime any
	if live {
		runtime = map[string]any{"active_since": v.activeSince.Format(jobTime), "nics": []any{}}
	}
	out["drives"] = drives
	out["tags"] = tagRefs(v.tags)
	out["is_grey"] = false
	out["jobs"] = []any{}
	out["owner"] = s.userRef()
	out["resource_uri"] = uri("servers", v.uuid)
	out["runtime"] = runtime
	out["status"] = v.status
	out["uuid"] = v.uuid
	return out
}

func (s *Sim) renderServerShort(v *server) map[string]any {
	full := s.renderServer(v)
	return trimFields(full, []string{"name", "owner", "resource_uri", "runtime", "status", "uuid"})
}

func (s *Sim) routeServers(w http.ResponseWriter, r *http.Request, p []string) *apiError {
	switch {
	case len(p) == 0:
		switch r.Method {
		case http.MethodGet:
			return s.listServers(w, r, false)
		case http.MethodPost:
			return s.createServers(w, r)
		}
		return errMethod(r.Method, "GET", "POST")
	case len(p) == 1 && p[0] == "detail":
		if r.Method != http.MethodGet {
			return errMethod(r.Method, "GET")
		}
		return s.listServers(w, r, true)
	case len(p) == 1:
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			v := s.servers[p[0]]
			var obj map[string]any
			if v != nil {
				obj = s.renderServer(v)
			}
			s.mu.Unlock()
			if v == nil {
				return errNotExist("Server %s does not exist", p[0])
			}
			writeObject(w, r, http.StatusOK, obj)
			return nil
		case http.MethodPut:
			return s.putServer(w, r, p[0])
		case http.MethodDelete:
			return s.deleteServer(w, r, p[0])
		}
		return errMethod(r.Method, "GET", "PUT", "DELETE")
	case len(p) == 2 && p[1] == "action":
		do, e := action(r)
		if e != nil {
			return e
		}
		return s.serverAction(w, p[0], do)
	}
	return errNotExist("No resource at %s", r.URL.Path)
}

func (s *Sim) listServers(w http.ResponseWriter, r *http.Request, detail bool) *apiError {
	s.mu.Lock()
	items := make([]listItem, 0, len(s.servers))
	for _, v := range s.servers {
		items = append(items, listItem{
			seq: v.seq, uuid: v.uuid, name: v.name(), tags: v.tags, tagNames: s.tagNames(v.tags),
			detail: s.renderServer(v), short: s.renderServerShort(v),
		})
	}
	s.mu.Unlock()
	return writeList(w, r, items, detail, listKind{fields: serverFields})
}

// addServer creates a server with a realistic definition (a NIC, meta, SSH
// keys) so that a client dropping fields on write-back is noticed.
// Caller holds s.mu.
func (s *Sim) addServer(id, name string, running bool) *server {
	fields := serverDefaults()
	fields["name"] = name
	fields["cpu"] = 2000
	fields["mem"] = int64(2147483648)
	fields["vnc_password"] = uuid.NewString()[:8]
	fields["meta"] = map[string]any{"description": "simulated server", "ssh_public_key": "ssh-ed25519 AAAAsim sim@cloudsigma"}
	fields["pubkeys"] = []any{uuid.NewSHA1(uuid.NameSpaceOID, []byte(id)).String()}
	fields["nics"] = []any{map[string]any{
		"boot_order": nil, "firewall_policy": nil, "ip_v4_conf": map[string]any{"conf": "dhcp", "ip": nil},
		"ip_v6_conf": nil, "mac": macFor(id), "model": "virtio", "runtime": nil, "vlan": nil,
	}}
	v := &server{
		seq: s.nextSeq(), uuid: id, status: srvStopped, fields: fields,
		tags: []string{}, detaching: map[string]srvDrive{}, appearAt: map[string]time.Time{},
	}
	if running {
		v.status, v.activeSince = srvRunning, time.Now().UTC()
	}
	s.servers[id] = v
	return v
}

func macFor(id string) string {
	u := uuid.NewSHA1(uuid.NameSpaceOID, []byte("mac:"+id))
	return fmt.Sprintf("22:%02x:%02x:%02x:%02x:%02x", u[0], u[1], u[2], u[3], u[4])
}

func (s *Sim) createServers(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	type spec struct {
		fields map[string]any
		tags   []string
		drives []srvDrive
	}
	specs := make([]spec, 0, len(objs))
	for _, m := range objs {
		f, t, d, e := parseServer(m)
		if e != nil {
			return e
		}
		specs = append(specs, spec{f, t, d})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if e := s.checkTags(sp.tags); e != nil {
			return e
		}
		probe := &server{status: srvStopped, detaching: map[string]srvDrive{}}
		if e := s.validateDrives(probe, sp.drives); e != nil {
			return e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	for _, sp := range specs {
		v := s.addServer(uuid.NewString(), "", false)
		v.fields, v.tags = sp.fields, sp.tags
		s.applyDrives(v, sp.drives)
		out = append(out, s.renderServer(v))
	}
	setLocation(w, "servers", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

// serverAction starts or stops a server. A transition keeps the server busy
// for the server-update delay; the answer is the API's 202 action object.
func (s *Sim) serverAction(w http.ResponseWriter, id, do string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.servers[id]
	if v == nil {
		return errNotExist("Server %s does not exist", id)
	}
	var from, during, to string
	switch do {
	case "start":
		from, during, to = srvStopped, srvStarting, srvRunning
	case "stop", "shutdown":
		from, during, to = srvRunning, srvStopping, srvStopped
	default:
		return errValidation("do", "Unknown action %q", do)
	}
	if v.busy || v.status == srvStarting || v.status == srvStopping {
		return errConcurrency("Server %s is being updated, try again later", id)
	}
	if v.status != from {
		return errPermission("Cannot %s server in state %s", do, v.status)
	}
	v.status = during
	s.after(s.cfg.Delays.ServerUpdate, func() func() {
		if cur := s.servers[id]; cur != nil && cur.status == during {
			cur.status = to
			if to == srvRunning {
				cur.activeSince = time.Now().UTC()
			}
		}
		return nil
	})
	writeJSON(w, http.StatusAccepted, map[string]any{"action": do, "result": "success", "uuid": id})
	return nil
}

// deleteServer removes a stopped server; ?recurse= also deletes its drives
// (all_drives, disks or cdroms, manual 11.8.2).
func (s *Sim) deleteServer(w http.ResponseWriter, r *http.Request, id string) *apiError {
	recurse := r.URL.Query().Get("recurse")
	if recurse != "" && !slices.Contains([]string{"all_drives", "disks", "cdroms"}, recurse) {
		return errValidation("recurse", "Invalid recurse option %q", recurse)
	}
	s.mu.Lock()
	v := s.servers[id]
	if v == nil {
		s.mu.Unlock()
		return errNotExist("Server %s does not exist", id)
	}
	if v.busy || v.status == srvStarting || v.status == srvStopping {
		s.mu.Unlock()
		return errConcurrency("Server %s is being updated, try again later", id)
	}
	if v.guestLive() {
		s.mu.Unlock()
		return errPermission("Cannot delete server %s in state %s", id, v.status)
	}
	var ids []string
	for _, e := range v.drives {
		ids = append(ids, e.drive)
	}
	for did := range v.detaching {
		ids = append(ids, did)
	}
	delete(s.servers, id)
	var posts []func()
	for _, did := range ids {
		d := s.drives[did]
		if d == nil {
			continue
		}
		d.mountedOn = slices.DeleteFunc(d.mountedOn, func(x string) bool { return x == id })
		if id == s.cfg.LocalServer && s.guest != nil {
			posts = append(posts, func() { s.reconcileGuest(did) })
		}
		if recurse == "all_drives" || (recurse == "disks" && d.media == "disk") || (recurse == "cdroms" && d.media == "cdrom") {
			_ = s.deleteDrive(did)
		}
	}
	s.mu.Unlock()
	runAll(posts)
	writeNoContent(w)
	return nil
}
