package cloudsim

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// Tests of behaviour the manual (seeds 003) states and the simulator once
// got wrong; each names the section it follows.

// Manual 2.11: "OPTIONS Get a comma separated list of the supported HTTP
// methods on a URL", answered 200 (the example sends no credentials).
func TestOptionsListsMethods(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("d", gib, nil)
	options := func(path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodOptions, e.url(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for path, want := range map[string]string{
		"/drives/":                   "GET, POST, DELETE",
		"/drives/detail/":            "GET",
		"/drives/" + id + "/":        "GET, PUT, DELETE",
		"/drives/" + id + "/action/": "POST",
		"/snapshots/":                "GET, POST, DELETE",
		"/servers/":                  "GET, POST",
		"/capabilities/":             "GET",
		"/tags/detail/":              "GET",
	} {
		resp, body := options(path)
		if resp.StatusCode != http.StatusOK || body != want || resp.Header.Get("Allow") != want {
			t.Errorf("OPTIONS %s: %d %q (Allow %q), want 200 %q", path, resp.StatusCode, body, resp.Header.Get("Allow"), want)
		}
	}
	if resp, _ := options("/nothing/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("OPTIONS on an unknown URL: %d, want 404", resp.StatusCode)
	}
	// The method stays refused where it is used for real.
	e.apiErr("PATCH", "/drives/", nil, http.StatusMethodNotAllowed, "validation")
}

// Manual 7.3-7.10: every drive definition (detail list, GET, PUT, resize,
// clone) carries grantees and permissions.
func TestDriveDefinitionsCarryGranteesAndPermissions(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("d", gib, nil)
	check := func(what string, d map[string]any) {
		t.Helper()
		for _, k := range []string{"grantees", "permissions"} {
			if l, ok := d[k].([]any); !ok || len(l) != 0 {
				t.Errorf("%s: %s = %v, want []", what, k, d[k])
			}
		}
	}
	check("GET", e.obj("GET", "/drives/"+id+"/", nil, http.StatusOK))
	check("detail list", objects(e.obj("GET", "/drives/detail/", nil, http.StatusOK))[0])
	check("PUT", e.obj("PUT", "/drives/"+id+"/", map[string]any{"name": "d", "media": "disk", "size": gib}, http.StatusOK))
	check("resize", objects(e.obj("POST", "/drives/"+id+"/action/?do=resize", map[string]any{"name": "d", "media": "disk", "size": 2 * gib}, http.StatusAccepted))[0])
	e.waitStatus(id, "unmounted")
	check("clone", objects(e.obj("POST", "/drives/"+id+"/action/?do=clone", nil, http.StatusAccepted))[0])
}

// Manual 7.2: the plain list's "fields — A set of field names specifying
// the returned fields"; without it the list is the short form.
func TestPlainListFieldsSelectFromDefinition(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("named", gib, nil)
	if o := objects(e.obj("GET", "/drives/?limit=0", nil, http.StatusOK))[0]; keys(o) != "owner,resource_uri,status,uuid" {
		t.Fatalf("short entry: %v", o)
	}
	if o := objects(e.obj("GET", "/drives/?fields=uuid,status&limit=0", nil, http.StatusOK))[0]; keys(o) != "status,uuid" {
		t.Fatalf("fields=uuid,status: %v", o)
	}
	o := objects(e.obj("GET", "/drives/?fields=uuid,name,size&limit=0", nil, http.StatusOK))[0]
	if keys(o) != "name,size,uuid" || o["name"] != "named" || o["size"] != float64(gib) {
		t.Fatalf("fields=uuid,name,size: %v", o)
	}
	// The manual writes "?fields=uuid, status": spaces are not part of a name.
	if o := e.obj("GET", "/drives/"+id+"/?fields=uuid,%20status", nil, http.StatusOK); keys(o) != "status,uuid" {
		t.Fatalf("GET with fields=uuid, status: %v", o)
	}
}

// Manual 2.12: "201 Object Created ... The Location response header
// contains the URI of the newly created object."
func TestCreateSetsLocation(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("d", gib, nil)
	post := func(path string, body any) (string, string) {
		t.Helper()
		resp, out := e.raw("POST", path, body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
		}
		var created map[string]any
		if err := json.Unmarshal(out, &created); err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get("Location"), objects(created)[0]["uuid"].(string)
	}
	for path, body := range map[string]any{
		"/drives/":    map[string]any{"name": "x", "media": "disk", "size": gib},
		"/snapshots/": map[string]any{"drive": id},
		"/servers/":   map[string]any{"objects": []any{map[string]any{"name": "s", "cpu": 1000, "mem": 536870912, "vnc_password": "pw"}}},
		"/tags/":      map[string]any{"name": "t"},
	} {
		loc, uuid := post(path, body)
		if want := "/api/2.0" + path + uuid + "/"; loc != want {
			t.Errorf("POST %s: Location %q, want %q", path, loc, want)
		}
	}
}

// Cloning reads the source only: a drive being cloned can be cloned again
// (the manual's clone naming example, ch. 6, clones one drive repeatedly),
// and it stays cloning_src until the last copy is done.
func TestCloneDriveBeingCloned(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Delays.Clone = 200 * time.Millisecond })
	src := e.createDrive("src", gib, nil)
	a := objects(e.obj("POST", "/drives/"+src+"/action/?do=clone", map[string]any{"name": "a"}, http.StatusAccepted))[0]
	time.Sleep(100 * time.Millisecond)
	b := objects(e.obj("POST", "/drives/"+src+"/action/?do=clone", map[string]any{"name": "b"}, http.StatusAccepted))[0]
	e.waitStatus(a["uuid"].(string), "unmounted")
	if s := e.driveStatus(src); s != "cloning_src" {
		t.Fatalf("source %s while the second copy runs, want cloning_src", s)
	}
	e.waitStatus(b["uuid"].(string), "unmounted")
	e.waitStatus(src, "unmounted")
	if d, _ := e.sim.Drive(src); len(d.Jobs) != 2 {
		t.Fatalf("source jobs %v, want 2", d.Jobs)
	}
	// Still refused while the drive is being deleted.
	e.call("DELETE", "/drives/"+src+"/", nil, http.StatusNoContent)
	e.apiErr("POST", "/drives/"+src+"/action/?do=clone", nil, http.StatusServiceUnavailable, "concurrency")
}

// Manual 11.5/11.6: the attach example PUTs no meta, and its answer keeps
// the meta set earlier (the sequence of pycloudsigma's test_server_edit,
// which produced those examples); a meta that is sent replaces the map.
func TestServerPutKeepsMetaWhenAbsent(t *testing.T) {
	e := newEnv(t, nil)
	srv := objects(e.obj("POST", "/servers/", map[string]any{"objects": []any{map[string]any{
		"cpu": 1000, "mem": 536870912, "name": "testServerAcc", "vnc_password": "testserver",
	}}}, http.StatusCreated))[0]["uuid"].(string)
	def := map[string]any{"cpu": 2000, "mem": 536870912, "name": "test_server_updated", "vnc_password": "updated_password"}
	if got := e.obj("PUT", "/servers/"+srv+"/", def, http.StatusOK); len(got["meta"].(map[string]any)) != 0 || got["cpu"] != 2000.0 {
		t.Fatalf("edit: %v", got)
	}
	withMeta := map[string]any{"meta": map[string]any{"meta_key1": "value1", "meta_key2": "value2"}}
	for k, v := range def {
		withMeta[k] = v
	}
	e.call("PUT", "/servers/"+srv+"/", withMeta, http.StatusOK)
	withMeta["meta"] = map[string]any{"meta_key2": "value2", "meta_key3": "value3"}
	got := e.obj("PUT", "/servers/"+srv+"/", withMeta, http.StatusOK)
	if m := got["meta"].(map[string]any); len(m) != 2 || m["meta_key3"] != "value3" {
		t.Fatalf("meta not replaced whole: %v", m)
	}
	e.call("PUT", "/servers/"+srv+"/", def, http.StatusOK)
	d := e.createDrive("b403f8e8", gib, nil)
	def["drives"] = []any{map[string]any{"boot_order": 1, "dev_channel": "0:0", "device": "virtio", "drive": d}}
	got = e.obj("PUT", "/servers/"+srv+"/", def, http.StatusOK)
	if m := got["meta"].(map[string]any); len(m) != 2 || m["meta_key2"] != "value2" || m["meta_key3"] != "value3" {
		t.Fatalf("attach without meta lost the meta: %v", m)
	}
	entry := got["drives"].([]any)[0].(map[string]any)
	if entry["drive"].(map[string]any)["uuid"] != d || entry["runtime"] != nil || entry["dev_channel"] != "0:0" {
		t.Fatalf("attached entry: %v", entry)
	}
}

// Manual 8.9: the clone request body is optional; left out, the new drive
// is like the snapshot's drive (pycloudsigma's test_snapshot_clone checks
// the media), and a media that is sent wins.
func TestSnapshotCloneKeepsDriveMedia(t *testing.T) {
	e := newEnv(t, nil)
	cd := e.createDrive("iso", gib, map[string]any{"media": "cdrom"})
	sn := objects(e.obj("POST", "/snapshots/", map[string]any{"drive": cd}, http.StatusCreated))[0]["uuid"].(string)
	waitFor(t, "snapshot available", func() bool {
		return e.obj("GET", "/snapshots/"+sn+"/", nil, http.StatusOK)["status"] == "available"
	})
	if got := e.obj("POST", "/snapshots/"+sn+"/action/?do=clone", nil, http.StatusAccepted); got["media"] != "cdrom" {
		t.Fatalf("clone media %v, want cdrom", got["media"])
	}
	if got := e.obj("POST", "/snapshots/"+sn+"/action/?do=clone", map[string]any{"media": "disk"}, http.StatusAccepted); got["media"] != "disk" {
		t.Fatalf("clone media %v, want disk", got["media"])
	}
}
