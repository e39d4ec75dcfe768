package cloudsigma_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	for i := range 45 {
		if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: fmt.Sprintf("page-%02d", i), Size: gib}); err != nil {
			t.Fatal(err)
		}
	}
	small := e.client(func(c *cloudsigma.Config) { c.PageSize = 20 })
	for _, tc := range []struct {
		name      string
		c         *cloudsigma.Client
		wantPages int
	}{{"default page size", e.c, 1}, {"page size 20", small, 3}} {
		e.sim.ResetCalls()
		all, err := tc.c.ListDrives(ctx, cloudsigma.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, d := range all {
			seen[d.UUID] = true
		}
		if len(all) != 45 || len(seen) != 45 {
			t.Errorf("%s: ListDrives returned %d drives (%d distinct), want 45", tc.name, len(all), len(seen))
		}
		calls := e.settledCalls(http.MethodGet, "/drives/detail/", tc.wantPages)
		if len(calls) != tc.wantPages {
			t.Errorf("%s: %d list calls, want %d", tc.name, len(calls), tc.wantPages)
		}
		for i, c := range calls {
			q := query(t, c)
			limit, lerr := strconv.Atoi(q.Get("limit"))
			offset, oerr := strconv.Atoi(q.Get("offset"))
			if lerr != nil || oerr != nil || limit <= 0 || (tc.wantPages > 1 && offset != i*limit) {
				t.Errorf("%s: call %d without an explicit positive limit and offset: %q", tc.name, i, c.Query)
			}
		}
	}
	page, err := e.c.ListDrivesPage(ctx, cloudsigma.Filter{}, 40, 20)
	if err != nil || page.Total != 45 || len(page.Items) != 5 || page.Items[0].Name != "page-40" {
		t.Fatalf("last page: %d items, total %d, %v", len(page.Items), page.Total, err)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	ids := map[string]string{}
	for _, name := range []string{"alpha", "beta", "gamma", "pvc,with,commas", "pvc", "with", `dir\`, `C:\data`} {
		d, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: gib})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = d.UUID
	}
	names := func(ds []cloudsigma.Drive) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		f    cloudsigma.Filter
		want []string
	}{
		{cloudsigma.Filter{Name: []string{"alpha", "gamma"}}, []string{"alpha", "gamma"}},
		{cloudsigma.Filter{Name: []string{"pvc,with,commas"}}, []string{"pvc,with,commas"}},
		{cloudsigma.Filter{Name: []string{"beta", "pvc,with,commas", "missing"}}, []string{"beta", "pvc,with,commas"}},
		{cloudsigma.Filter{NameContains: "c,w"}, []string{"pvc,with,commas"}},
		{cloudsigma.Filter{NameContains: "a"}, []string{"C:\\data", "alpha", "beta", "gamma", "pvc,with,commas"}},
		{cloudsigma.Filter{UUID: []string{ids["beta"], ids["with"]}}, []string{"beta", "with"}},
		{cloudsigma.Filter{Name: []string{"alpha", "beta"}, UUID: []string{ids["beta"]}}, []string{"beta"}},
		{cloudsigma.Filter{Name: []string{"nothing"}}, nil},
		// A backslash ending an ORed value is escaped so that it does not
		// escape the separating comma (manual 2.15).
		{cloudsigma.Filter{Name: []string{`dir\`, "alpha"}}, []string{"alpha", `dir\`}},
	} {
		got, err := e.c.ListDrives(ctx, tc.f)
		if err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		if !slices.Equal(names(got), tc.want) {
			t.Errorf("filter %+v matched %q, want %q", tc.f, names(got), tc.want)
		}
	}
}

// TestFilterBackslashEscaping: the manual (2.15) gives a meaning only to a
// backslash in front of a comma ("\," is a literal comma, "\\," a
// literal backslash followed by a separator); any other backslash is an
// ordinary character. A name with a backslash elsewhere must therefore be
// sent as is.
func TestFilterBackslashEscaping(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: `C:\data`, Size: gib}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []cloudsigma.Filter{{Name: []string{`C:\data`}}, {Name: []string{`C:\data`, "other"}}, {NameContains: `:\d`}} {
		e.sim.ResetCalls()
		got, err := e.c.ListDrives(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			var q []string
			for _, c := range e.calls(http.MethodGet, "/drives/detail/") {
				q = append(q, c.Query)
			}
			t.Errorf("filter %+v matched %d drives, want 1 (sent %q)", f, len(got), q)
		}
	}
}

// TestFilterRefusesInexpressibleValues: the manual's escaping (2.15) has no
// way to send a backslash followed by a literal comma; listing with such a
// value would silently match something else, so the client refuses.
func TestFilterRefusesInexpressibleValues(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	for _, name := range []string{`a\,b`, `a\`, "b"} {
		if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: name, Size: gib}); err != nil {
			t.Fatal(err)
		}
	}
	e.sim.ResetCalls()
	for _, f := range []cloudsigma.Filter{{Name: []string{`a\,b`}}, {Name: []string{"b", `a\,b`}}, {NameContains: `\,`}} {
		if got, err := e.c.ListDrives(ctx, f); err == nil {
			t.Errorf("filter %+v accepted, matched %d drives", f, len(got))
		}
		if _, err := e.c.ListSnapshotsPage(ctx, f, 0, 10); err == nil {
			t.Errorf("snapshot filter %+v accepted", f)
		}
	}
	if calls := e.calls(http.MethodGet, "/detail/"); len(calls) != 0 {
		t.Errorf("refused filters were sent: %+v", calls)
	}
}

// capLimit wraps the simulator so that it serves at most max objects per
// page, whatever limit the client asks for, and optionally drops the
// response's meta block.
func capLimit(h http.Handler, max int, dropMeta bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if l, err := strconv.Atoi(q.Get("limit")); err == nil && (l == 0 || l > max) {
			q.Set("limit", strconv.Itoa(max))
			r.URL.RawQuery = q.Encode()
		}
		if !dropMeta || r.Method != http.MethodGet {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body map[string]json.RawMessage
		out := rec.Body.Bytes()
		if json.Unmarshal(out, &body) == nil {
			delete(body, "meta")
			out, _ = json.Marshal(body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	})
}

// TestListFollowsTotalCountPastShortPages: the API may serve fewer objects
// than asked for; a short page does not end the list while meta.total_count
// says more exist. Without a total_count, pages are followed until one comes
// back short or empty.
func TestListFollowsTotalCountPastShortPages(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	for i := range 25 {
		if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "cap-" + strconv.Itoa(i), Size: gib}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		dropMeta bool
		pageSize int
	}{{"capped pages", false, 100}, {"no meta", true, 5}, {"no meta, capped", true, 100}} {
		srv := httptest.NewServer(capLimit(e.sim.Handler(), 7, tc.dropMeta))
		c := e.client(func(c *cloudsigma.Config) { c.APIURL, c.PageSize = srv.URL+"/api/2.0/", tc.pageSize })
		all, err := c.ListDrives(ctx, cloudsigma.Filter{NameContains: "cap-"})
		srv.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		seen := map[string]bool{}
		for _, d := range all {
			seen[d.UUID] = true
		}
		// Without a total, a page shorter than the page size asked for
		// is taken as the last: with a cap below it, only the first page.
		want := 25
		if tc.dropMeta && tc.pageSize > 7 {
			want = 7
		}
		if len(all) != want || len(seen) != want {
			t.Errorf("%s: %d drives (%d distinct), want %d", tc.name, len(all), len(seen), want)
		}
	}
}
