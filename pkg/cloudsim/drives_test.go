package cloudsim

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"
)

const detailKeys = "affinities,allow_multimount,grantees,jobs,licenses,media,meta,mounted_on,name,owner,permissions,resource_uri,runtime,size,snapshots,status,storage_type,tags,uuid"

func TestDriveCreateGetListShapes(t *testing.T) {
	e := newEnv(t, nil)
	// Single object, size as a numeric string (as in the 002 examples).
	created := e.obj("POST", "/drives/", map[string]any{"name": "d0", "media": "disk", "size": "1073741824"}, http.StatusCreated)
	objs := objects(created)
	if len(objs) != 1 || keys(objs[0]) != detailKeys {
		t.Fatalf("create answer: %v", created)
	}
	d := objs[0]
	if d["status"] != "creating" || d["size"] != float64(gib) || d["storage_type"] != nil {
		t.Fatalf("new drive: status %v size %v storage_type %v", d["status"], d["size"], d["storage_type"])
	}
	id := d["uuid"].(string)
	if d["resource_uri"] != "/api/2.0/drives/"+id+"/" {
		t.Fatalf("resource_uri %v", d["resource_uri"])
	}
	// The two list forms of create.
	objs = objects(e.obj("POST", "/drives/", map[string]any{"objects": []any{
		map[string]any{"name": "d1", "media": "disk", "size": gib},
		map[string]any{"name": "d2", "media": "cdrom", "size": gib, "storage_type": "zadara"},
	}}, http.StatusCreated))
	if len(objs) != 2 || objs[1]["storage_type"] != "zadara" {
		t.Fatalf("objects create: %v", objs)
	}
	if len(objects(e.obj("POST", "/drives/", []any{map[string]any{"name": "d3", "media": "disk", "size": gib}}, http.StatusCreated))) != 1 {
		t.Fatal("bare list create")
	}
	e.waitStatus(id, "unmounted")

	got := e.obj("GET", "/drives/"+id+"/", nil, http.StatusOK)
	if keys(got) != detailKeys || got["storage_type"] != "dssd" || got["status"] != "unmounted" {
		t.Fatalf("GET drive: %v", got)
	}
	rt := got["runtime"].(map[string]any)
	if rt["is_snapshotable"] != true || rt["storage_type"] != "dssd" {
		t.Fatalf("runtime: %v", rt)
	}
	list := e.obj("GET", "/drives/", nil, http.StatusOK)
	for _, o := range objects(list) {
		if keys(o) != "owner,resource_uri,status,uuid" {
			t.Fatalf("short list entry: %v", o)
		}
	}
	for _, o := range objects(e.obj("GET", "/drives/detail/", nil, http.StatusOK)) {
		if keys(o) != detailKeys {
			t.Fatalf("detail entry: %v", o)
		}
	}
	trimmed := objects(e.obj("GET", "/drives/detail/?fields=uuid,status", nil, http.StatusOK))
	if keys(trimmed[0]) != "status,uuid" {
		t.Fatalf("fields trim: %v", trimmed[0])
	}
}

func TestDriveValidation(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		body  any
		point string
	}{
		{map[string]any{"name": "x", "media": "disk", "size": 1 << 20}, "size"},
		{map[string]any{"name": "x", "media": "disk", "size": 5 * 1024 * gib}, "size"},
		{map[string]any{"name": "x", "media": "disk", "size": gib, "storage_type": "floppy"}, "storage_type"},
		{map[string]any{"media": "disk", "size": gib}, "name"},
		{map[string]any{"name": "x", "size": gib}, "media"},
		{map[string]any{"name": "x", "media": "tape", "size": gib}, "media"},
		{map[string]any{"name": "x", "media": "disk"}, "size"},
		{map[string]any{"name": "x", "media": "disk", "size": "big"}, "size"},
		{map[string]any{"name": "x", "media": "disk", "size": gib, "meta": map[string]any{"k123456789012345678901234567890123": "v"}}, "meta"},
		{map[string]any{"name": "x", "media": "disk", "size": gib, "meta": map[string]any{"k": 1}}, "meta"},
		{map[string]any{"name": "x", "media": "disk", "size": gib, "tags": []any{"no-such-tag"}}, "tags"},
	}
	for i, c := range cases {
		m := e.apiErr("POST", "/drives/", c.body, http.StatusBadRequest, "validation")
		if m["error_point"] != c.point {
			t.Errorf("case %d: error_point %v, want %s", i, m["error_point"], c.point)
		}
	}
	// A bad batch creates nothing.
	e.apiErr("POST", "/drives/", []any{
		map[string]any{"name": "ok", "media": "disk", "size": gib},
		map[string]any{"name": "bad", "media": "disk", "size": 1},
	}, http.StatusBadRequest, "validation")
	e.apiErr("POST", "/drives/", []byte("{not json"), http.StatusBadRequest, "validation")
	if n := len(e.sim.Drives()); n != 0 {
		t.Fatalf("%d drives created by failed requests", n)
	}
	// Sizes are rounded up to 64 KiB.
	id := e.createDrive("odd", gib+1, nil)
	if d, _ := e.sim.Drive(id); d.Size != gib+64<<10 {
		t.Fatalf("size %d not rounded up", d.Size)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, nil)
	var batch []any
	for i := 0; i < 45; i++ {
		batch = append(batch, map[string]any{"name": fmt.Sprintf("p%02d", i), "media": "disk", "size": gib})
	}
	e.call("POST", "/drives/", batch, http.StatusCreated)
	check := func(q string, n, limit, offset int) []map[string]any {
		t.Helper()
		v := e.obj("GET", "/drives/detail/"+q, nil, http.StatusOK)
		meta := v["meta"].(map[string]any)
		objs := objects(v)
		if len(objs) != n || meta["limit"] != float64(limit) || meta["offset"] != float64(offset) || meta["total_count"] != 45.0 {
			t.Fatalf("%q: %d objects, meta %v", q, len(objs), meta)
		}
		return objs
	}
	check("", 20, 20, 0) // the default page is 20, not everything
	all := check("?limit=0", 45, 0, 0)
	last := check("?limit=20&offset=40", 5, 20, 40)
	if last[0]["name"] != "p40" || all[44]["name"] != "p44" {
		t.Fatalf("order: %v %v", last[0]["name"], all[44]["name"])
	}
	check("?offset=100", 0, 20, 100)
	e.apiErr("GET", "/drives/?limit=-1", nil, http.StatusBadRequest, "validation")
	e.apiErr("GET", "/drives/?limit=x", nil, http.StatusBadRequest, "validation")
}

func TestFilters(t *testing.T) {
	e := newEnv(t, nil)
	tagID := objects(e.obj("POST", "/tags/", map[string]any{"name": "gold"}, http.StatusCreated))[0]["uuid"].(string)
	ids := map[string]string{}
	for _, n := range []string{"alpha", "beta", "gamma", `a,b`, `back\`} {
		extra := map[string]any{}
		if n == "beta" || n == "gamma" {
			extra["tags"] = []any{tagID}
		}
		ids[n] = e.createDrive(n, gib, extra)
	}
	names := func(q string) string {
		t.Helper()
		var out []string
		for _, o := range objects(e.obj("GET", "/drives/detail/"+q, nil, http.StatusOK)) {
			out = append(out, o["name"].(string))
		}
		return fmt.Sprint(out)
	}
	cases := map[string]string{
		"?name=alpha":                  "[alpha]",
		"?name=alpha,gamma":            "[alpha gamma]",
		"?name=a%5C,b":                 "[a,b]",         // name=a\,b
		"?name=back%5C%5C,alpha":       `[alpha back\]`, // name=back\\,alpha
		"?name__contains=a":            `[alpha beta gamma a,b back\]`,
		"?name__contains=mm":           "[gamma]",
		"?name=alpha&name=beta":        "[]", // repeated = AND
		"?name=alpha,beta&name=beta":   "[beta]",
		"?uuid=" + ids["beta"]:         "[beta]",
		"?tag=" + tagID:                "[beta gamma]",
		"?tag__name=gold&name=gamma":   "[gamma]",
		"?unknown_param=1&name=alpha":  "[alpha]",
		"?name=alpha&fields=name,uuid": "[alpha]",
		"?name=nothing":                "[]",
	}
	for q, want := range cases {
		if got := names(q); got != want {
			t.Errorf("%s: got %s, want %s", q, got, want)
		}
	}
	e.apiErr("GET", "/drives/?status=unmounted", nil, http.StatusBadRequest, "validation")
	e.apiErr("GET", "/drives/?size=1", nil, http.StatusBadRequest, "validation")
	e.apiErr("GET", "/drives/?name__icontains=A", nil, http.StatusBadRequest, "validation")
	// The tag's resources follow the drives' tags fields.
	tg := e.obj("GET", "/tags/"+tagID+"/", nil, http.StatusOK)
	if res := tg["resources"].([]any); len(res) != 2 || res[0].(map[string]any)["res_type"] != "drives" {
		t.Fatalf("tag resources: %v", tg)
	}
	if n := len(objects(e.obj("GET", "/tags/"+tagID+"/drives/", nil, http.StatusOK))); n != 2 {
		t.Fatalf("tagged drives: %d", n)
	}
	// Replacing a tag's resources retags the drives.
	e.call("PUT", "/tags/"+tagID+"/", map[string]any{"name": "gold", "resources": []any{ids["alpha"]}}, http.StatusOK)
	if got := names("?tag=" + tagID); got != "[alpha]" {
		t.Fatalf("after tag PUT: %s", got)
	}
	d := e.obj("GET", "/drives/"+ids["alpha"]+"/", nil, http.StatusOK)
	if tags := d["tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["uuid"] != tagID {
		t.Fatalf("drive tags: %v", d["tags"])
	}
	e.call("DELETE", "/tags/"+tagID+"/", nil, http.StatusNoContent)
	if d, _ := e.sim.Drive(ids["alpha"]); len(d.Tags) != 0 {
		t.Fatalf("deleted tag still on drive: %v", d.Tags)
	}
}

func TestDriveTransitionsAndPut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Delays.Create = 150 * time.Millisecond })
	id := objects(e.obj("POST", "/drives/", map[string]any{"name": "t", "media": "disk", "size": gib, "meta": map[string]any{"a": "1"}}, http.StatusCreated))[0]["uuid"].(string)
	if s := e.driveStatus(id); s != "creating" {
		t.Fatalf("status %s, want creating", s)
	}
	// Changes to a drive in a transitional state: 503 concurrency.
	e.apiErr("PUT", "/drives/"+id+"/", map[string]any{"name": "t", "media": "disk", "size": gib}, http.StatusServiceUnavailable, "concurrency")
	e.apiErr("POST", "/drives/"+id+"/action/?do=clone", nil, http.StatusServiceUnavailable, "concurrency")
	e.apiErr("DELETE", "/drives/"+id+"/", nil, http.StatusServiceUnavailable, "concurrency")
	e.waitStatus(id, "unmounted")

	// A PUT is a full definition: leaving meta out wipes it.
	e.apiErr("PUT", "/drives/"+id+"/", map[string]any{"name": "t2"}, http.StatusBadRequest, "validation")
	d := e.obj("PUT", "/drives/"+id+"/", map[string]any{"name": "t2", "media": "disk", "size": gib}, http.StatusOK)
	if d["name"] != "t2" || len(d["meta"].(map[string]any)) != 0 {
		t.Fatalf("PUT result: %v", d)
	}
	// A bigger size on an unmounted drive resizes it.
	d = e.obj("PUT", "/drives/"+id+"/", map[string]any{"name": "t2", "media": "disk", "size": 2 * gib}, http.StatusOK)
	if d["status"] != "resizing" || d["size"] != float64(2*gib) {
		t.Fatalf("PUT resize: %v %v", d["status"], d["size"])
	}
	e.waitStatus(id, "unmounted")

	if err := e.sim.SetDriveStatus(id, "unavailable"); err != nil {
		t.Fatal(err)
	}
	if v := e.obj("GET", "/drives/"+id+"/", nil, http.StatusOK); v["status"] != "unavailable" {
		t.Fatalf("status %v", v["status"])
	}
	e.apiErr("POST", "/drives/"+id+"/action/?do=clone", nil, http.StatusForbidden, "permission")
	if err := e.sim.SetDriveStatus(id, "unmounted"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetDriveStatus(id, "bogus"); err == nil {
		t.Fatal("bogus status accepted")
	}
}

func TestResize(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("r", gib, map[string]any{"meta": map[string]any{"k": "v"}})
	path := "/drives/" + id + "/action/?do=resize"
	full := func(size int64) map[string]any {
		return map[string]any{"name": "r", "media": "disk", "size": size, "meta": map[string]any{"k": "v"}}
	}
	p := e.apiErr("POST", path, map[string]any{"size": 2 * gib, "media": "disk"}, http.StatusBadRequest, "validation")
	if p["error_point"] != "name" {
		t.Fatalf("missing name: %v", p)
	}
	if p := e.apiErr("POST", path, map[string]any{"size": 2 * gib, "name": "r"}, http.StatusBadRequest, "validation"); p["error_point"] != "media" {
		t.Fatalf("missing media: %v", p)
	}
	e.apiErr("POST", path, full(gib/2), http.StatusBadRequest, "validation") // shrinking
	objs := objects(e.obj("POST", path, full(3*gib), http.StatusAccepted))
	if objs[0]["status"] != "resizing" || objs[0]["size"] != float64(3*gib) {
		t.Fatalf("resize answer: %v", objs[0])
	}
	e.waitStatus(id, "unmounted")
	if d, _ := e.sim.Drive(id); d.Size != 3*gib || d.Meta["k"] != "v" {
		t.Fatalf("after resize: %+v", d)
	}

	// Mounted on a running server: 403, and a plain PUT ignores the size.
	srv := e.sim.CreateServer("vm", true)
	e.attach(srv, id, "0:0")
	m := e.apiErr("POST", path, full(4*gib), http.StatusForbidden, "permission")
	if m["error_message"] != "Cannot resize drive mounted on a running guest" {
		t.Fatalf("message %v", m["error_message"])
	}
	d := e.obj("PUT", "/drives/"+id+"/", map[string]any{"name": "renamed", "media": "cdrom", "size": 4 * gib, "meta": map[string]any{"x": "y"}}, http.StatusOK)
	if d["size"] != float64(3*gib) || d["media"] != "disk" || d["name"] != "renamed" || d["meta"].(map[string]any)["x"] != "y" {
		t.Fatalf("PUT on mounted drive: %v", d)
	}
	// Mounted on a stopped server: allowed.
	stopped := e.sim.CreateServer("off", false)
	other := e.createDrive("o", gib, nil)
	e.attach(stopped, other, "0:0")
	e.call("POST", "/drives/"+other+"/action/?do=resize", map[string]any{"name": "o", "media": "disk", "size": 2 * gib}, http.StatusAccepted)
}

func TestClone(t *testing.T) {
	e := newEnv(t, nil)
	src := e.createDrive("src", gib, map[string]any{"meta": map[string]any{"pvc": "one"}})
	d, _ := e.sim.Drive(src)
	writeAt(t, d.BackingFile, 4096, []byte("hello clone"))
	objs := objects(e.obj("POST", "/drives/"+src+"/action/?do=clone&avoid="+src, map[string]any{"name": "copy"}, http.StatusAccepted))
	dst := objs[0]
	if dst["status"] != "cloning_dst" || dst["name"] != "copy" || dst["size"] != float64(gib) || dst["storage_type"] != nil {
		t.Fatalf("clone answer: %v", dst)
	}
	jobs := dst["jobs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("jobs: %v", jobs)
	}
	jobID := jobs[0].(map[string]any)["uuid"].(string)
	if s := e.driveStatus(src); s != "cloning_src" {
		t.Fatalf("source status %s", s)
	}
	// A drive being cloned can be cloned again; it stays cloning_src until
	// the last copy is done.
	second := objects(e.obj("POST", "/drives/"+src+"/action/?do=clone", nil, http.StatusAccepted))[0]
	job := e.obj("GET", "/jobs/"+jobID+"/", nil, http.StatusOK)
	if job["operation"] != "drive_clone" || job["state"] != "started" || len(job["resources"].([]any)) != 2 {
		t.Fatalf("job: %v", job)
	}
	dstID := dst["uuid"].(string)
	e.waitStatus(dstID, "unmounted")
	e.waitStatus(second["uuid"].(string), "unmounted")
	e.waitStatus(src, "unmounted")
	job = e.obj("GET", "/jobs/"+jobID+"/", nil, http.StatusOK)
	if job["state"] != "success" || job["data"].(map[string]any)["progress"] != 100.0 {
		t.Fatalf("job done: %v", job)
	}
	if n := len(objects(e.obj("GET", "/jobs/", nil, http.StatusOK))); n != 2 {
		t.Fatalf("%d jobs listed", n)
	}
	c, _ := e.sim.Drive(dstID)
	if got := readAt(t, c.BackingFile, 4096, 11); !bytes.Equal(got, []byte("hello clone")) {
		t.Fatalf("clone data %q", got)
	}
	if c.Meta["pvc"] != "one" || c.StorageType != "dssd" {
		t.Fatalf("clone: %+v", c)
	}
	// Without a name the copy keeps the source's name: names are not unique.
	objs = objects(e.obj("POST", "/drives/"+src+"/action/?do=clone", nil, http.StatusAccepted))
	if objs[0]["name"] != "src" {
		t.Fatalf("default clone name %v", objs[0]["name"])
	}
	e.apiErr("POST", "/drives/"+dstID+"/action/?do=clone", map[string]any{"storage_type": "local_nvme"}, http.StatusForbidden, "permission")
	nv := e.createDrive("nv", gib, map[string]any{"storage_type": "local_nvme"})
	e.apiErr("POST", "/drives/"+nv+"/action/?do=clone", nil, http.StatusForbidden, "permission")
	e.apiErr("POST", "/drives/"+nv+"/action/?do=explode", nil, http.StatusBadRequest, "validation")
}

func TestDeleteAsync(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createDrive("del", gib, nil)
	resp, body := e.raw("DELETE", "/drives/"+id+"/", nil)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE: %d %q", resp.StatusCode, body)
	}
	e.call("GET", "/drives/"+id+"/", nil, http.StatusOK) // still there
	e.call("DELETE", "/drives/"+id+"/", nil, http.StatusNoContent)
	waitFor(t, "drive gone", func() bool { _, ok := e.sim.Drive(id); return !ok })
	e.apiErr("GET", "/drives/"+id+"/", nil, http.StatusNotFound, "notexist")

	// Deleting a mounted drive is allowed; it leaves the server.
	srv := e.sim.CreateServer("vm", true)
	m := e.createDrive("mounted", gib, nil)
	e.attach(srv, m, "0:1")
	e.call("DELETE", "/drives/"+m+"/", nil, http.StatusNoContent)
	waitFor(t, "mounted drive gone", func() bool { _, ok := e.sim.Drive(m); return !ok })
	if v, _ := e.sim.Server(srv); len(v.Drives) != 0 {
		t.Fatalf("server still lists %v", v.Drives)
	}

	a, b := e.createDrive("a", gib, nil), e.createDrive("b", gib, nil)
	e.apiErr("DELETE", "/drives/", map[string]any{"objects": []any{map[string]any{"uuid": a}, map[string]any{"uuid": "missing"}}}, http.StatusNotFound, "notexist")
	e.call("DELETE", "/drives/", map[string]any{"objects": []any{map[string]any{"uuid": a}, map[string]any{"uuid": b}}}, http.StatusNoContent)
	waitFor(t, "bulk delete", func() bool { return len(e.sim.Drives()) == 0 })
}
