package cloudsim

import (
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestServerHotplugAndAsyncDetach(t *testing.T) {
	e := newEnv(t, nil)
	srv := e.sim.CreateServer("node-1", true)
	d1 := e.createDrive("v1", gib, nil)
	def := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	for _, k := range []string{"context", "cpu", "cpu_model", "cpus_instead_of_cores", "cpu_type", "hypervisor",
		"drives", "enable_numa", "grantees", "hv_relaxed", "hv_tsc", "jobs", "mem", "meta", "name", "nics",
		"owner", "permissions", "pubkeys", "requirements", "resource_uri", "runtime", "smp", "status", "tags",
		"uuid", "vnc_password", "is_grey"} {
		if _, ok := def[k]; !ok {
			t.Errorf("server definition lacks %s", k)
		}
	}
	def["drives"] = []any{map[string]any{"boot_order": 1, "dev_channel": "0:0", "device": "virtio", "drive": d1}}
	got := e.obj("PUT", "/servers/"+srv+"/", def, http.StatusOK)
	entry := got["drives"].([]any)[0].(map[string]any)
	if entry["drive"].(map[string]any)["uuid"] != d1 || entry["runtime"] == nil || entry["dev_channel"] != "0:0" {
		t.Fatalf("drive entry: %v", entry)
	}
	if !reflect.DeepEqual(e.sim.LastServerPut(srv), jsonRound(t, def)) {
		t.Fatal("LastServerPut differs from the body sent")
	}
	dr := e.obj("GET", "/drives/"+d1+"/", nil, http.StatusOK)
	mo := dr["mounted_on"].([]any)
	if dr["status"] != "mounted" || len(mo) != 1 || mo[0].(map[string]any)["uuid"] != srv {
		t.Fatalf("attached drive: %v %v", dr["status"], mo)
	}
	// Writing back the definition keeps what the server had.
	after := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	for _, k := range []string{"nics", "meta", "pubkeys", "vnc_password", "cpu_type"} {
		if !reflect.DeepEqual(after[k], def[k]) {
			t.Errorf("%s changed: %v -> %v", k, def[k], after[k])
		}
	}

	// Detach: gone from the server at once, mounted until the detach delay.
	start := time.Now()
	got = e.detach(srv, d1)
	if len(got["drives"].([]any)) != 0 {
		t.Fatalf("drives after detach: %v", got["drives"])
	}
	if s := e.driveStatus(d1); s != "mounted" && time.Since(start) < testDelays.Detach {
		t.Fatalf("status right after detach %s", s)
	}
	if v, _ := e.sim.Server(srv); len(v.Detaching) != 1 {
		t.Fatalf("detaching: %v", v.Detaching)
	}
	e.waitStatus(d1, "unmounted")
	if time.Since(start) < testDelays.Detach {
		t.Fatalf("detached after %v, before the detach delay", time.Since(start))
	}
}

func TestServerPutValidation(t *testing.T) {
	e := newEnv(t, nil)
	srv := e.sim.CreateServer("vm", false)
	other := e.sim.CreateServer("other", false)
	a, b := e.createDrive("a", gib, nil), e.createDrive("b", gib, nil)
	e.attach(other, b, "0:0")
	base := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	put := func(drives []any) map[string]any {
		t.Helper()
		def, _ := deepCopy(base).(map[string]any)
		def["drives"] = drives
		return e.apiErr("PUT", "/servers/"+srv+"/", def, http.StatusBadRequest, "validation")
	}
	ent := func(ch, dev, drive string) map[string]any {
		return map[string]any{"boot_order": nil, "dev_channel": ch, "device": dev, "drive": drive}
	}
	bad := [][]any{
		{ent("0-0", "virtio", a)},
		{ent("0:", "virtio", a)},
		{ent("0:6", "virtio", a)},
		{ent("171:0", "virtio", a)},
		{ent("2:0", "ide", a)},
		{ent("0:0", "scsi", a)},
		{ent("0:0", "virtio", a), ent("0:0", "virtio", b)},
		{ent("0:0", "virtio", a), ent("0:1", "virtio", a)},
		{ent("0:1", "virtio", b)}, // b is on another server, not multimount
		{ent("0:1", "virtio", "00000000-0000-0000-0000-000000000000")},
	}
	for i, drives := range bad {
		if m := put(drives); m["error_point"] != "drives" {
			t.Errorf("case %d: %v", i, m)
		}
	}
	creating := objects(e.obj("POST", "/drives/", map[string]any{"name": "c", "media": "disk", "size": gib}, http.StatusCreated))[0]["uuid"].(string)
	put([]any{ent("0:1", "virtio", creating)})
	// Required fields of a full definition.
	def, _ := deepCopy(base).(map[string]any)
	delete(def, "mem")
	if m := e.apiErr("PUT", "/servers/"+srv+"/", def, http.StatusBadRequest, "validation"); m["error_point"] != "mem" {
		t.Fatalf("missing mem: %v", m)
	}
	// ide and virtio channels are separate name spaces; multimount is allowed.
	e.obj("PUT", "/drives/"+b+"/", map[string]any{"name": "b", "media": "disk", "size": gib, "allow_multimount": true}, http.StatusOK)
	def, _ = deepCopy(base).(map[string]any)
	def["drives"] = []any{ent("0:0", "ide", a), ent("0:0", "virtio", b), ent("170:5", "virtio", creating+"x")}
	e.apiErr("PUT", "/servers/"+srv+"/", def, http.StatusBadRequest, "validation")
	def["drives"] = []any{ent("0:0", "ide", a), ent("0:0", "virtio", b)}
	e.call("PUT", "/servers/"+srv+"/", def, http.StatusOK)
	if d, _ := e.sim.Drive(b); len(d.MountedOn) != 2 {
		t.Fatalf("multimount: %v", d.MountedOn)
	}
}

func TestServerPutOverlap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Delays.ServerUpdate = 300 * time.Millisecond })
	srv := e.sim.CreateServer("vm", true)
	a, b := e.createDrive("a", gib, nil), e.createDrive("b", gib, nil)
	def := e.obj("GET", "/servers/"+srv+"/", nil, http.StatusOK)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, d := range []string{a, b} {
		body, _ := deepCopy(def).(map[string]any)
		body["drives"] = []any{map[string]any{"boot_order": nil, "dev_channel": "0:0", "device": "virtio", "drive": d}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
			resp, _ := e.raw("PUT", "/servers/"+srv+"/", body)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if codes[0] != http.StatusOK || codes[1] != http.StatusServiceUnavailable {
		t.Fatalf("overlapping PUTs: %v, want [200 503]", codes)
	}
	if s := e.driveStatus(b); s != "unmounted" {
		t.Fatalf("the refused attach happened: %s", s)
	}
}

func TestServerFullDefinitionSemantics(t *testing.T) {
	e := newEnv(t, nil)
	running := e.sim.CreateServer("run", true)
	stopped := e.sim.CreateServer("stop", false)
	minimal := func(name string) map[string]any {
		return map[string]any{"name": name, "cpu": 4000, "mem": gib, "vnc_password": "pw"}
	}
	// Stopped: everything left out falls back to defaults, except meta,
	// which a PUT without it keeps (manual 11.6).
	got := e.obj("PUT", "/servers/"+stopped+"/", minimal("stop2"), http.StatusOK)
	if len(got["nics"].([]any)) != 0 || len(got["meta"].(map[string]any)) != 2 || got["cpu"] != 4000.0 || len(got["pubkeys"].([]any)) != 0 {
		t.Fatalf("stopped server after minimal PUT: %v", got)
	}
	withMeta := minimal("stop3")
	withMeta["meta"] = map[string]any{"k": "v"}
	if got = e.obj("PUT", "/servers/"+stopped+"/", withMeta, http.StatusOK); len(got["meta"].(map[string]any)) != 1 {
		t.Fatalf("a sent meta does not replace the map: %v", got["meta"])
	}
	// Running: hardware changes are ignored, but meta still follows the PUT.
	before := e.obj("GET", "/servers/"+running+"/", nil, http.StatusOK)
	got = e.obj("PUT", "/servers/"+running+"/", minimal("run2"), http.StatusOK)
	if got["name"] != "run2" || got["cpu"] != before["cpu"] || len(got["nics"].([]any)) != 1 {
		t.Fatalf("running server after minimal PUT: %v", got)
	}
	if len(got["meta"].(map[string]any)) != len(before["meta"].(map[string]any)) {
		t.Fatalf("meta changed by a PUT without meta: %v", got["meta"])
	}
	withMeta = minimal("run3")
	withMeta["meta"] = map[string]any{}
	if got = e.obj("PUT", "/servers/"+running+"/", withMeta, http.StatusOK); len(got["meta"].(map[string]any)) != 0 {
		t.Fatalf("running server meta not replaced: %v", got["meta"])
	}
}

func TestServerLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	objs := objects(e.obj("POST", "/servers/", map[string]any{"objects": []any{
		map[string]any{"name": "s1", "cpu": 1000, "mem": 536870912, "vnc_password": "x"},
	}}, http.StatusCreated))
	id := objs[0]["uuid"].(string)
	if objs[0]["status"] != "stopped" || objs[0]["runtime"] != nil {
		t.Fatalf("new server: %v", objs[0])
	}
	e.apiErr("POST", "/servers/", map[string]any{"name": "s2"}, http.StatusBadRequest, "validation")
	for _, o := range objects(e.obj("GET", "/servers/", nil, http.StatusOK)) {
		if keys(o) != "name,owner,resource_uri,runtime,status,uuid" {
			t.Fatalf("short server: %v", o)
		}
	}
	a := e.obj("POST", "/servers/"+id+"/action/?do=start", nil, http.StatusAccepted)
	if a["action"] != "start" || a["result"] != "success" {
		t.Fatalf("start: %v", a)
	}
	waitFor(t, "running", func() bool { v, _ := e.sim.Server(id); return v.Status == "running" })
	e.apiErr("POST", "/servers/"+id+"/action/?do=start", nil, http.StatusForbidden, "permission")
	e.apiErr("DELETE", "/servers/"+id+"/", nil, http.StatusForbidden, "permission")
	e.call("POST", "/servers/"+id+"/action/?do=stop", nil, http.StatusAccepted)
	waitFor(t, "stopped", func() bool { v, _ := e.sim.Server(id); return v.Status == "stopped" })
	d := e.createDrive("d", gib, nil)
	e.attach(id, d, "0:0")
	e.call("DELETE", "/servers/"+id+"/?recurse=disks", nil, http.StatusNoContent)
	e.apiErr("GET", "/servers/"+id+"/", nil, http.StatusNotFound, "notexist")
	waitFor(t, "recursive delete", func() bool { _, ok := e.sim.Drive(d); return !ok })
}
