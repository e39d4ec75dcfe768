package cloudsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// serverRequired are the fields a create or PUT must carry (manual 11.4).
var serverRequired = []string{"cpu", "mem", "name", "vnc_password"}

var serverFields = []string{"auto_start", "context", "cpu", "cpu_model", "cpu_type",
	"cpus_instead_of_cores", "drives", "enable_numa", "grantees", "hv_relaxed", "hv_tsc",
	"hypervisor", "is_grey", "jobs", "mem", "meta", "name", "nics", "owner", "permissions",
	"pubkeys", "requirements", "resource_uri", "runtime", "smp", "status", "tags", "uuid",
	"vnc_password"}

// serverSpec is a parsed full server definition.
type serverSpec struct {
	fields map[string]any // writable fields except drives and tags
	tags   []string
	drives []srvDrive
}

// parseServer reads a full server definition. Read-only fields (owner,
// status, runtime, ...) and unknown ones are ignored; absent writable
// fields take their defaults.
func parseServer(m map[string]any) (serverSpec, *apiError) {
	for _, f := range serverRequired {
		if v, ok := m[f]; !ok || v == nil {
			return serverSpec{}, errValidation(f, "This field is required.")
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
		return serverSpec{}, e
	}
	if _, _, e := getString(m, "vnc_password"); e != nil {
		return serverSpec{}, e
	}
	for _, k := range []string{"cpu", "mem", "smp"} {
		if n, ok, e := getInt64(m, k); e != nil {
			return serverSpec{}, e
		} else if ok && n <= 0 {
			return serverSpec{}, errValidation(k, "%s must be positive", k)
		}
	}
	meta, e := getMeta(m)
	if e != nil {
		return serverSpec{}, e
	}
	mm := map[string]any{}
	for k, v := range meta {
		mm[k] = v
	}
	fields["meta"] = mm
	tags, e := getRefs(m, "tags")
	if e != nil {
		return serverSpec{}, e
	}
	drives, e := parseServerDrives(m)
	if e != nil {
		return serverSpec{}, e
	}
	return serverSpec{fields, tags, drives}, nil
}

// Device channel limits (manual 11.7.1): virtio has 6 units per controller
// and 1024 drives in all; ide has 0:0, 0:1, 1:0 and 1:1.
const (
	virtioUnits      = 6
	virtioMaxDrives  = 1024
	virtioMaxControl = (virtioMaxDrives+virtioUnits-1)/virtioUnits - 1 // 170
)

// parseServerDrives checks the drives list of a definition on its own:
// channel syntax and limits, and no channel or drive used twice.
func parseServerDrives(m map[string]any) ([]srvDrive, *apiError) {
	list, e := getList(m, "drives")
	if e != nil {
		return nil, e
	}
	out := make([]srvDrive, 0, len(list))
	channels := map[string]string{}
	seen := map[string]bool{}
	virtio := 0
	for _, item := range list {
		em, ok := item.(map[string]any)
		if !ok {
			return nil, errValidation("drives", "Each drive entry must be an object")
		}
		id, ok := refUUID(em["drive"])
		if !ok {
			return nil, errValidation("drives", "Drive entry without a drive")
		}
		device, _ := em["device"].(string)
		ch, _ := em["dev_channel"].(string)
		ctrl, unit, ok := parseChannel(ch)
		if !ok {
			return nil, errValidation("drives", "Invalid dev_channel %q: expected controller:unit", ch)
		}
		switch device {
		case "virtio":
			if unit >= virtioUnits || ctrl > virtioMaxControl {
				return nil, errValidation("drives", "Invalid virtio dev_channel %s: units are 0-%d, controllers 0-%d", ch, virtioUnits-1, virtioMaxControl)
			}
			virtio++
		case "ide":
			if ctrl > 1 || unit > 1 {
				return nil, errValidation("drives", "Invalid ide dev_channel %s: use 0:0, 0:1, 1:0 or 1:1", ch)
			}
		default:
			return nil, errValidation("drives", "Invalid device %q: use virtio or ide", device)
		}
		ch = fmt.Sprintf("%d:%d", ctrl, unit)
		key := device + " " + ch
		if other, dup := channels[key]; dup {
			return nil, errValidation("drives", "dev_channel %s (%s) is given to drives %s and %s", ch, device, other, id)
		}
		channels[key] = id
		if seen[id] {
			return nil, errValidation("drives", "Drive %s is attached twice", id)
		}
		seen[id] = true
		var boot any
		if b, present := em["boot_order"]; present && b != nil {
			if _, _, e := getInt64(em, "boot_order"); e != nil {
				return nil, errValidation("drives", "boot_order must be an integer or null")
			}
			boot = b
		}
		out = append(out, srvDrive{drive: id, devChannel: ch, device: device, bootOrder: boot})
	}
	if virtio > virtioMaxDrives {
		return nil, errValidation("drives", "At most %d virtio drives", virtioMaxDrives)
	}
	return out, nil
}

func parseChannel(ch string) (int, int, bool) {
	c, u, ok := strings.Cut(ch, ":")
	if !ok {
		return 0, 0, false
	}
	ctrl, err1 := strconv.Atoi(c)
	unit, err2 := strconv.Atoi(u)
	if err1 != nil || err2 != nil || ctrl < 0 || unit < 0 || strings.HasPrefix(c, "+") || strings.HasPrefix(u, "+") {
		return 0, 0, false
	}
	return ctrl, unit, true
}

func (a *api) listServers(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.serverList(), false, listKind{fields: serverFields})
}

func (a *api) listServersDetail(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.serverList(), true, listKind{fields: serverFields})
}

func (a *api) getServer(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := a.st.serverObject(r.PathValue("uuid"))
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (a *api) createServers(w http.ResponseWriter, r *http.Request) *apiError {
	objs, e := decodeObjects(r)
	if e != nil {
		return e
	}
	specs := make([]serverSpec, 0, len(objs))
	for _, m := range objs {
		sp, e := parseServer(m)
		if e != nil {
			return e
		}
		specs = append(specs, sp)
	}
	out, e := a.st.createServers(specs)
	if e != nil {
		return e
	}
	setLocation(w, "servers", out)
	writeObjects(w, http.StatusCreated, out)
	return nil
}

// putServer hands the body to the store unparsed: see store.putServer.
func (a *api) putServer(w http.ResponseWriter, r *http.Request) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	obj, e := a.st.putServer(r.PathValue("uuid"), m)
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

// deleteServer removes a stopped server; ?recurse= also deletes its drives
// (all_drives, disks or cdroms, manual 11.8.2).
func (a *api) deleteServer(w http.ResponseWriter, r *http.Request) *apiError {
	recurse := r.URL.Query().Get("recurse")
	if recurse != "" && !slices.Contains([]string{"all_drives", "disks", "cdroms"}, recurse) {
		return errValidation("recurse", "Invalid recurse option %q", recurse)
	}
	if e := a.st.deleteServer(r.PathValue("uuid"), recurse); e != nil {
		return e
	}
	writeNoContent(w)
	return nil
}

// serverAction starts or stops a server (?do=start, stop or shutdown); the
// answer is the API's 202 action object. The store's powerActions table
// picks the transition, after checking that the server exists.
func (a *api) serverAction(w http.ResponseWriter, r *http.Request) *apiError {
	do, e := actionName(r)
	if e != nil {
		return e
	}
	id := r.PathValue("uuid")
	if e := a.st.serverPower(id, do); e != nil {
		return e
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"action": do, "result": "success", "uuid": id})
	return nil
}
