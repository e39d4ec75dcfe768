package cloudsigma_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

// TestAvoidIsAQueryParameter: avoid is the GET parameter of create and
// clone ("POST /drives/?avoid={uuid1},{uuid2}", "?do=clone&avoid=..."),
// a comma-separated list of drive or server UUIDs.
func TestAvoidIsAQueryParameter(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	a := e.readyDrive("avoid-a", gib)
	b := e.readyDrive("avoid-b", gib)
	want := a.UUID + "," + b.UUID

	e.sim.ResetCalls()
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "apart", Size: gib, Avoid: []string{a.UUID, b.UUID}}); err != nil {
		t.Fatal(err)
	}
	if calls := e.settledCalls(http.MethodPost, "/drives/", 1); len(calls) != 1 || query(t, calls[0]).Get("avoid") != want {
		t.Errorf("create calls %+v, want avoid=%s in the query", calls, want)
	}

	e.sim.ResetCalls()
	if _, err := e.c.CloneDrive(ctx, a.UUID, cloudsigma.DriveClone{Name: "apart-clone", Avoid: []string{a.UUID, b.UUID}}); err != nil {
		t.Fatal(err)
	}
	calls := e.settledCalls(http.MethodPost, "/drives/"+a.UUID+"/action/", 1)
	if len(calls) != 1 || query(t, calls[0]).Get("avoid") != want || query(t, calls[0]).Get("do") != "clone" {
		t.Errorf("clone calls %+v, want do=clone&avoid=%s", calls, want)
	}
}

// TestInvalidIDsNeverReachTheAPI: an empty or dot UUID would address
// another resource (GET drives// is the drive list, DELETE drives/../ the
// API root); the client refuses it without a call.
func TestInvalidIDsNeverReachTheAPI(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	e.readyDrive("bystander", gib)
	e.sim.ResetCalls()
	for _, id := range []string{"", ".", ".."} {
		if d, err := e.c.GetDrive(ctx, id); err == nil {
			t.Errorf("GetDrive(%q) = %+v, want an error", id, d)
		}
		if err := e.c.DeleteDrive(ctx, id); err == nil {
			t.Errorf("DeleteDrive(%q) succeeded", id)
		}
		if _, err := e.c.GetSnapshot(ctx, id); err == nil {
			t.Errorf("GetSnapshot(%q) succeeded", id)
		}
		if err := e.c.DeleteSnapshot(ctx, id); err == nil {
			t.Errorf("DeleteSnapshot(%q) succeeded", id)
		}
		if _, err := e.c.GetServer(ctx, id); err == nil {
			t.Errorf("GetServer(%q) succeeded", id)
		}
		if _, _, err := e.c.DownloadImage(ctx, id); err == nil {
			t.Errorf("DownloadImage(%q) succeeded", id)
		}
	}
	if calls := e.settledCalls("", "", 0); len(calls) != 0 {
		t.Errorf("invalid ids reached the API: %+v", calls)
	}
	if len(e.sim.Drives()) != 1 {
		t.Errorf("%d drives left, want 1", len(e.sim.Drives()))
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

// slowReader yields its data in chunks with a pause before each.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

func uploadEnv(t *testing.T, cli func(*cloudsigma.Config)) *simEnv {
	return newSimEnv(t, func(c *cloudsim.Config) {
		caps := cloudsim.DefaultCapabilities()
		caps.Drives["dssd"] = cloudsim.SizeLimits{Min: 1 << 20, Max: caps.Drives["dssd"].Max}
		c.Capabilities = caps
	}, cli)
}

// TestImageTransfersOutliveTheAPITimeout: http.Client.Timeout covers
// reading the body, so an overall API timeout would cut off any image that
// takes longer to move. Transfers stream under ctx alone.
func TestImageTransfersOutliveTheAPITimeout(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	e := uploadEnv(t, func(c *cloudsigma.Config) { c.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond} })
	ctx := ctxT(t)
	img := make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id, err := e.c.UploadImage(ctx, &slowReader{data: img, chunk: size / 8, pause: 80 * time.Millisecond}, size)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("the upload took only %v; the test proves nothing", el)
	}
	if _, err := e.c.WaitDrive(ctx, id, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	body, _, err := e.c.DownloadImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, body, 4096); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a slow consumer
	if _, err := io.Copy(h, body); err != nil {
		t.Fatalf("slow download: %v", err)
	}
	if want := sha256.Sum256(img); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("downloaded image differs")
	}
	// API calls keep their timeout.
	e.sim.InjectFault(cloudsim.Fault{PathPrefix: "/capabilities/", Latency: time.Second})
	if _, err := e.c.GetCapabilities(ctx); err == nil {
		t.Error("an API call outlived its 300ms timeout")
	}
}

// TestUploadLengthMismatchCreatesNoDrive: Content-Length "determines the
// size of the drive which will be created". A source longer or shorter
// than declared fails the upload before the last byte is sent, so neither
// a truncated nor a padded drive appears.
func TestUploadLengthMismatchCreatesNoDrive(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	e := uploadEnv(t, nil)
	ctx := ctxT(t)
	img := make([]byte, size+1)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"one byte too many", img}, {"much too long", append(img, img...)}, {"one byte short", img[:size-1]}, {"half", img[:size/2]}} {
		_, err := e.c.UploadImage(ctx, bytes.NewReader(tc.data), size)
		if err == nil || !strings.Contains(err.Error(), "declared size") {
			t.Errorf("%s: want a size mismatch error, got %v", tc.name, err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(e.sim.Drives()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ds := e.sim.Drives(); len(ds) != 0 {
		t.Errorf("mismatched uploads created drives: %+v", ds)
	}
	// The exact length still works.
	if _, err := e.c.UploadImage(ctx, bytes.NewReader(img[:size]), size); err != nil {
		t.Fatal(err)
	}
}

// TestRedirectToPlainHTTPRefused: Go forwards Authorization on a redirect
// to the same host whatever the scheme; a downgrade from https would send
// the password in clear text, so the client does not follow it.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	d := e.readyDrive("img", gib)
	plain, _ := url.Parse(e.srv.URL)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := *r.URL
		to.Scheme, to.Host = "http", plain.Host
		http.Redirect(w, r, to.String(), http.StatusFound)
	}))
	defer tlsSrv.Close()
	c := e.client(func(c *cloudsigma.Config) {
		c.APIURL, c.AllowInsecureHTTP, c.HTTPClient = tlsSrv.URL+"/api/2.0/", false, tlsSrv.Client()
	})
	e.sim.ResetCalls()
	_, err := c.GetCapabilities(ctx)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("GetCapabilities through a downgrading redirect: %v", err)
	}
	if _, _, err := c.DownloadImage(ctx, d.UUID); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("DownloadImage through a downgrading redirect: %v", err)
	}
	if calls := e.settledCalls("", "", 0); len(calls) != 0 {
		t.Errorf("the plain http simulator was called: %+v", calls)
	}
	if tlsSrv.Client().CheckRedirect != nil {
		t.Error("the caller's http.Client was modified")
	}
}

// TestCredentialsInURL: credentials written into the API URL are used
// when none are configured and never shown.
func TestCredentialsInURL(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	u, _ := url.Parse(e.apiURL())
	u.User = url.UserPassword(testUser, testPassword)
	c := e.client(func(c *cloudsigma.Config) { c.APIURL, c.Username, c.Password = u.String(), "", "" })
	if _, err := c.GetCapabilities(ctxT(t)); err != nil {
		t.Fatalf("credentials from the URL: %v", err)
	}
	if strings.Contains(c.BaseURL(), testPassword) || strings.Contains(c.BaseURL(), "@") {
		t.Errorf("BaseURL %q shows userinfo", c.BaseURL())
	}
	_, err := c.GetDrive(ctxT(t), "00000000-0000-4000-8000-000000000000")
	if err == nil || strings.Contains(err.Error(), testPassword) {
		t.Errorf("error %v", err)
	}
}

// TestRateLimiterWaitIsAContextError: when the limiter's wait would outlast
// the deadline it refuses at once; callers still see a deadline error.
func TestRateLimiterWaitIsAContextError(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, func(c *cloudsigma.Config) { c.RequestsPerMinute = 1 })
	if _, err := e.c.GetCapabilities(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	_, err := e.c.GetCapabilities(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want a deadline error, got %v", err)
	}
	if _, err := e.c.UploadImage(ctx, strings.NewReader("x"), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("upload: want a deadline error, got %v", err)
	}
}

// TestPOSTRetriedAfter429: a 429 is an explicit rejection, so even a
// create is repeated; a read-modify-write is not.
func TestPOSTRetriedAfter429(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Delays = cloudsim.Delays{} }, nil)
	ctx := ctxT(t)
	e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusTooManyRequests, Count: 1})
	if _, err := e.c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: "after-429", Size: gib}); err != nil {
		t.Fatal(err)
	}
	if calls := e.settledCalls(http.MethodPost, "/drives/", 2); len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 201 {
		t.Errorf("calls %+v, want 429 then 201", calls)
	}
	if n := len(e.sim.Drives()); n != 1 {
		t.Errorf("%d drives, want 1", n)
	}
	d, err := e.c.ListDrives(ctx, cloudsigma.Filter{Name: []string{"after-429"}})
	if err != nil || len(d) != 1 {
		t.Fatalf("ListDrives: %v, %v", d, err)
	}
	e.sim.ResetCalls()
	e.sim.InjectFault(cloudsim.Fault{Method: http.MethodPost, PathPrefix: "/drives/", Status: http.StatusTooManyRequests, Count: 1})
	if _, err := e.c.ResizeDrive(ctx, &d[0], 2*gib); err == nil {
		t.Error("resize succeeded through a 429")
	}
	if calls := e.settledCalls(http.MethodPost, "/action/", 1); len(calls) != 1 {
		t.Errorf("a resize was repeated: %+v", calls)
	}
}
