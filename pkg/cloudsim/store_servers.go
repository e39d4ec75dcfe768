package cloudsim

import (
	"fmt"
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

// updating: a PUT or a power transition is under way (503 to others).
func (v *server) updating() bool {
	return v.busy || v.status == srvStarting || v.status == srvStopping
}

func (v *server) entry(driveID string) (srvDrive, bool) {
	for _, e := range v.drives {
		if e.drive == driveID {
			return e, true
		}
	}
	return srvDrive{}, false
}

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

// ioStats is the per-drive runtime of a running server.
func ioStats() map[string]any {
	return map[string]any{"io": map[string]any{
		"bytes_read": 0, "bytes_written": 0, "count_flush": 0, "count_read": 0,
		"count_write": 0, "total_time_ns_flush": 0, "total_time_ns_read": 0, "total_time_ns_write": 0,
	}}
}

func (st *store) renderServerLocked(v *server) map[string]any {
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
	out["owner"] = st.userRef()
	out["resource_uri"] = uri("servers", v.uuid)
	out["runtime"] = runtime
	out["status"] = v.status
	out["uuid"] = v.uuid
	return out
}

func (st *store) renderServerShortLocked(v *server) map[string]any {
	full := st.renderServerLocked(v)
	return trimFields(full, []string{"name", "owner", "resource_uri", "runtime", "status", "uuid"})
}

// serverList renders every server for the list endpoints.
func (st *store) serverList() []listItem {
	st.mu.Lock()
	defer st.mu.Unlock()
	items := make([]listItem, 0, len(st.servers))
	for _, v := range st.servers {
		items = append(items, listItem{
			seq: v.seq, uuid: v.uuid, name: v.name(), tags: v.tags, tagNames: st.tagNamesLocked(v.tags),
			detail: st.renderServerLocked(v), short: st.renderServerShortLocked(v),
		})
	}
	return items
}

func (st *store) serverObject(id string) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return nil, errNotExist("Server %s does not exist", id)
	}
	return st.renderServerLocked(v), nil
}

// addServer creates a server with a realistic definition and returns its
// UUID.
func (st *store) addServer(id, name string, running bool) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.addServerLocked(id, name, running).uuid
}

// addServerLocked creates a server with a realistic definition (a NIC,
// meta, SSH keys) so that a client dropping fields on write-back is
// noticed.
func (st *store) addServerLocked(id, name string, running bool) *server {
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
		seq: st.nextSeqLocked(), uuid: id, status: srvStopped, fields: fields,
		tags: []string{}, detaching: map[string]srvDrive{}, appearAt: map[string]time.Time{},
	}
	if running {
		v.status, v.activeSince = srvRunning, time.Now().UTC()
	}
	st.servers[id] = v
	return v
}

func macFor(id string) string {
	u := uuid.NewSHA1(uuid.NameSpaceOID, []byte("mac:"+id))
	return fmt.Sprintf("22:%02x:%02x:%02x:%02x:%02x", u[0], u[1], u[2], u[3], u[4])
}

// createServers creates every spec or, when one is invalid, none.
func (st *store) createServers(specs []serverSpec) (out []map[string]any, e *apiError) {
	var posts []func()
	st.locked(func() { out, posts, e = st.createServersLocked(specs) })
	runAll(posts)
	return out, e
}

func (st *store) createServersLocked(specs []serverSpec) ([]map[string]any, []func(), *apiError) {
	for _, sp := range specs {
		if e := st.checkTagsLocked(sp.tags); e != nil {
			return nil, nil, e
		}
		probe := &server{status: srvStopped, detaching: map[string]srvDrive{}}
		if e := st.validateDrivesLocked(probe, sp.drives); e != nil {
			return nil, nil, e
		}
	}
	out := make([]map[string]any, 0, len(specs))
	var posts []func()
	for _, sp := range specs {
		v := st.addServerLocked(uuid.NewString(), "", false)
		v.fields, v.tags = sp.fields, sp.tags
		posts = append(posts, st.applyDrivesLocked(v, sp.drives)...)
		out = append(out, st.renderServerLocked(v))
	}
	return out, posts, nil
}

// powerActions maps the ?do= of a server action to the transition it
// starts: from the status it needs, through a transitional one, to the
// status it ends in.
var powerActions = map[string]struct{ from, during, to string }{
	"start":    {srvStopped, srvStarting, srvRunning},
	"stop":     {srvRunning, srvStopping, srvStopped},
	"shutdown": {srvRunning, srvStopping, srvStopped},
}

// serverPower starts or stops a server. The transition keeps the server
// busy for the server-update delay.
func (st *store) serverPower(id, do string) *apiError {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return errNotExist("Server %s does not exist", id)
	}
	tr, ok := powerActions[do]
	if !ok {
		return errValidation("do", "Unknown action %q", do)
	}
	if v.updating() {
		return errConcurrency("Server %s is being updated, try again later", id)
	}
	if v.status != tr.from {
		return errPermission("Cannot %s server in state %s", do, v.status)
	}
	v.status = tr.during
	st.afterLocked(st.delays.ServerUpdate, func() {
		st.powerGuest(id, tr.to) // a QEMU guest boots or shuts down before the status says so
		st.endPower(id, tr.during, tr.to)
	})
	return nil
}

// endPower is the end of a start or stop, unless something else changed
// the status meanwhile.
func (st *store) endPower(id, during, to string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v := st.servers[id]; v != nil && v.status == during {
		v.status = to
		if to == srvRunning {
			v.activeSince = time.Now().UTC()
		}
	}
}

// deleteServer removes a stopped server; recurse (all_drives, disks or
// cdroms, manual 11.8.2) also deletes its drives.
func (st *store) deleteServer(id, recurse string) (e *apiError) {
	var posts []func()
	st.locked(func() { posts, e = st.deleteServerLocked(id, recurse) })
	runAll(posts)
	return e
}

func (st *store) deleteServerLocked(id, recurse string) ([]func(), *apiError) {
	v := st.servers[id]
	if v == nil {
		return nil, errNotExist("Server %s does not exist", id)
	}
	if v.updating() {
		return nil, errConcurrency("Server %s is being updated, try again later", id)
	}
	if v.guestLive() {
		return nil, errPermission("Cannot delete server %s in state %s", id, v.status)
	}
	var ids []string
	for _, e := range v.drives {
		ids = append(ids, e.drive)
	}
	for did := range v.detaching {
		ids = append(ids, did)
	}
	delete(st.servers, id)
	var posts []func()
	for _, did := range ids {
		d := st.drives[did]
		if d == nil {
			continue
		}
		d.mountedOn = slices.DeleteFunc(d.mountedOn, func(x string) bool { return x == id })
		if st.hasGuest(id) {
			posts = append(posts, func() { st.reconcileGuest(did) })
		}
		if recurse == "all_drives" || (recurse == "disks" && d.media == "disk") || (recurse == "cdroms" && d.media == "cdrom") {
			_ = st.deleteDriveLocked(did)
		}
	}
	return posts, nil
}
