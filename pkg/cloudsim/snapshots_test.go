package cloudsim

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

const snapshotKeys = "allocated_size,drive,grantees,meta,name,owner,permissions,resource_uri,status,tags,timestamp,uuid"

func TestSnapshotCreateAndClone(t *testing.T) {
	// A snapshot delay long enough that a loaded machine still sends the
	// clone below while the snapshot is creating.
	e := newEnv(t, func(c *Config) { c.Delays.Snapshot = time.Second })
	drv := e.createDrive("data", gib, map[string]any{"meta": map[string]any{"pvc": "p"}})
	file := func(id string) string { d, _ := e.sim.Drive(id); return d.BackingFile }
	writeAt(t, file(drv), 1<<20, []byte("before"))

	objs := objects(e.obj("POST", "/snapshots/", map[string]any{"drive": drv, "name": "first", "meta": map[string]any{"key": "val"}}, http.StatusCreated))
	sn := objs[0]
	if keys(sn) != snapshotKeys || sn["status"] != "creating" || sn["allocated_size"] != nil {
		t.Fatalf("snapshot answer: %v", sn)
	}
	if sn["drive"].(map[string]any)["uuid"] != drv {
		t.Fatalf("snapshot drive: %v", sn["drive"])
	}
	snID := sn["uuid"].(string)
	// The snapshot holds the bytes of snapshot time.
	writeAt(t, file(drv), 1<<20, []byte("AFTER!"))
	e.apiErr("POST", "/snapshots/"+snID+"/action/?do=clone", nil, http.StatusServiceUnavailable, "concurrency")
	waitFor(t, "snapshot available", func() bool {
		return e.obj("GET", "/snapshots/"+snID+"/", nil, http.StatusOK)["status"] == "available"
	})
	d := e.obj("GET", "/drives/"+drv+"/", nil, http.StatusOK)
	if s := d["snapshots"].([]any); len(s) != 1 || s[0].(map[string]any)["uuid"] != snID {
		t.Fatalf("drive snapshots: %v", d["snapshots"])
	}

	// The clone answer is a bare drive whose resource_uri is an object.
	clone := e.obj("POST", "/snapshots/"+snID+"/action/?do=clone&avoid="+drv, map[string]any{}, http.StatusAccepted)
	if _, wrapped := clone["objects"]; wrapped {
		t.Fatalf("clone answer is wrapped: %v", clone)
	}
	ru, ok := clone["resource_uri"].(map[string]any)
	newID, _ := clone["uuid"].(string)
	if !ok || ru["uuid"] != newID || ru["resource_uri"] != "/api/2.0/drives/"+newID+"/" {
		t.Fatalf("resource_uri: %v", clone["resource_uri"])
	}
	if clone["status"] != "cloning_dst" || clone["size"] != float64(gib) || clone["name"] != "first" || clone["storage_type"] != nil {
		t.Fatalf("clone: %v", clone)
	}
	e.waitStatus(newID, "unmounted")
	if got := readAt(t, file(newID), 1<<20, 6); !bytes.Equal(got, []byte("before")) {
		t.Fatalf("restored data %q, want the snapshot-time bytes", got)
	}

	// Edit, filter, delete.
	put := e.obj("PUT", "/snapshots/"+snID+"/", map[string]any{"name": "renamed", "meta": map[string]any{"new": "v"}}, http.StatusOK)
	if put["name"] != "renamed" || put["meta"].(map[string]any)["key"] != nil {
		t.Fatalf("PUT snapshot: %v", put)
	}
	other := e.createDrive("other", gib, nil)
	e.call("POST", "/snapshots/", map[string]any{"objects": []any{map[string]any{"drive": other}}}, http.StatusCreated)
	list := objects(e.obj("GET", "/snapshots/detail/?drive="+drv, nil, http.StatusOK))
	if len(list) != 1 || list[0]["uuid"] != snID {
		t.Fatalf("?drive= filter: %v", list)
	}
	if n := len(objects(e.obj("GET", "/snapshots/?limit=0", nil, http.StatusOK))); n != 2 {
		t.Fatalf("%d snapshots", n)
	}
	e.call("DELETE", "/snapshots/"+snID+"/", nil, http.StatusNoContent)
	waitFor(t, "snapshot gone", func() bool { return len(e.sim.Snapshots()) == 1 })
	e.apiErr("GET", "/snapshots/"+snID+"/", nil, http.StatusNotFound, "notexist")

	// Deleting a drive takes its snapshots with it.
	e.call("DELETE", "/drives/"+other+"/", nil, http.StatusNoContent)
	waitFor(t, "cascade", func() bool { return len(e.sim.Snapshots()) == 0 })
}

func TestSnapshotLimitsAndErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Capabilities = DefaultCapabilities()
		c.Capabilities.SnapshotsMax = 3
		c.Capabilities.SnapshotsMaxPerDrive = 2
	})
	a, b := e.createDrive("a", gib, nil), e.createDrive("b", gib, nil)
	e.call("POST", "/snapshots/", map[string]any{"drive": a}, http.StatusCreated)
	e.call("POST", "/snapshots/", map[string]any{"drive": a}, http.StatusCreated)
	e.apiErr("POST", "/snapshots/", map[string]any{"drive": a}, http.StatusForbidden, "permission")
	e.call("POST", "/snapshots/", map[string]any{"drive": b}, http.StatusCreated)
	e.apiErr("POST", "/snapshots/", map[string]any{"drive": b}, http.StatusForbidden, "permission")
	caps := e.obj("GET", "/capabilities/", nil, http.StatusOK)["snapshots"].(map[string]any)
	if caps["current"] != 3.0 {
		t.Fatalf("capabilities snapshots: %v", caps)
	}
	e.apiErr("POST", "/snapshots/", map[string]any{"name": "x"}, http.StatusBadRequest, "validation")
	e.apiErr("POST", "/snapshots/", map[string]any{"drive": "00000000-0000-0000-0000-000000000000"}, http.StatusBadRequest, "validation")
	nv := e.createDrive("nv", gib, map[string]any{"storage_type": "local_nvme"})
	if m := e.apiErr("POST", "/snapshots/", map[string]any{"drive": nv}, http.StatusForbidden, "permission"); !strings.Contains(m["error_message"].(string), "local_nvme") {
		t.Fatalf("local_nvme snapshot: %v", m)
	}
	if rt := e.obj("GET", "/drives/"+nv+"/", nil, http.StatusOK)["runtime"].(map[string]any); rt["is_snapshotable"] != false {
		t.Fatalf("local_nvme runtime: %v", rt)
	}
}
