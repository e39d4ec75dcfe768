package cloudsigma_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func TestLocationURL(t *testing.T) {
	if got := cloudsigma.LocationURL("zrh"); got != "https://zrh.cloudsigma.com/api/2.0/" {
		t.Errorf("LocationURL(zrh) = %q", got)
	}
}

func TestConfigValidation(t *testing.T) {
	creds := func(c cloudsigma.Config) cloudsigma.Config { c.Username, c.Password = testUser, testPassword; return c }
	for _, tc := range []struct {
		name    string
		cfg     cloudsigma.Config
		wantErr string // "" = valid
		base    string
	}{
		{"nothing", cloudsigma.Config{}, "API URL or a location", ""},
		{"no credentials", cloudsigma.Config{Location: "zrh"}, "credentials", ""},
		{"location", creds(cloudsigma.Config{Location: "zrh"}), "", "https://zrh.cloudsigma.com/api/2.0/"},
		{"API URL wins, slash added, token only", cloudsigma.Config{APIURL: "https://api.example.net/api/2.0", Location: "zrh", Token: "t"}, "", "https://api.example.net/api/2.0/"},
		{"plain http refused", creds(cloudsigma.Config{APIURL: "http://127.0.0.1:8080/api/2.0/"}), "plain http", ""},
		{"plain http allowed", creds(cloudsigma.Config{APIURL: "http://127.0.0.1:8080/api/2.0/", AllowInsecureHTTP: true}), "", "http://127.0.0.1:8080/api/2.0/"},
		{"plain http upload URL refused", creds(cloudsigma.Config{Location: "zrh", UploadURL: "http://direct.example.net/api/2.0/"}), "plain http", ""},
		{"other scheme", creds(cloudsigma.Config{APIURL: "ftp://zrh.cloudsigma.com/api/2.0/"}), "scheme", ""},
		{"no host", creds(cloudsigma.Config{APIURL: "https:///api/2.0/"}), "invalid", ""},
		{"unparsable", creds(cloudsigma.Config{APIURL: "https://zrh.cloudsigma.com/%zz"}), "invalid", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cloudsigma.New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error mentioning %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BaseURL() != tc.base {
				t.Errorf("BaseURL %q, want %q", c.BaseURL(), tc.base)
			}
		})
	}
}

// recorder is a transport that answers canned responses and keeps the
// requests, so routing and auth can be checked without a network.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	body string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(r.body)), Request: req}, nil
}

func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request sent")
	}
	return r.reqs[len(r.reqs)-1]
}

func TestRoutingAndAuthHeaders(t *testing.T) {
	rt := &recorder{}
	c, err := cloudsigma.New(cloudsigma.Config{
		Location: "zrh", Username: testUser, Password: testPassword, Token: "tok-123",
		HTTPClient: &http.Client{Transport: rt}, UserAgent: "csi-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt.body = `{"drives":{},"snapshots":{}}`
	if _, err := c.GetCapabilities(ctx); err != nil {
		t.Fatal(err)
	}
	req := rt.last(t)
	if req.URL.String() != "https://zrh.cloudsigma.com/api/2.0/capabilities/" || req.Header.Get("Authorization") != "Bearer tok-123" ||
		req.Header.Get("User-Agent") != "csi-test" || req.Header.Get("Accept") != "application/json" {
		t.Errorf("API call %s with headers %v", req.URL, req.Header)
	}

	// Uploads go to direct.<host> and use Basic auth even with a token.
	const id = "7feae3c2-00fd-41d6-836c-0335fb92f95b"
	for _, answer := range []string{id, id + "\n", `"` + id + `"`, `{"uuid":"` + id + `","name":"x"}`} {
		rt.body = answer
		got, err := c.UploadImage(ctx, strings.NewReader("0123456789"), 10)
		if err != nil || got != id {
			t.Errorf("upload answer %q read as %q, %v", answer, got, err)
		}
	}
	req = rt.last(t)
	user, pass, ok := req.BasicAuth()
	if req.URL.String() != "https://direct.zrh.cloudsigma.com/api/2.0/drives/upload/" || !ok || user != testUser || pass != testPassword ||
		req.ContentLength != 10 || req.Header.Get("Content-Type") != "application/octet-stream" || req.Method != http.MethodPost {
		t.Errorf("upload %s %s, length %d, headers %v", req.Method, req.URL, req.ContentLength, req.Header)
	}
	rt.body = "<html>oops</html>"
	if _, err := c.UploadImage(ctx, strings.NewReader("0123456789"), 10); err == nil {
		t.Error("an upload answer without a UUID was accepted")
	}

	rt.body = "data"
	body, _, err := c.DownloadImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	if req = rt.last(t); req.URL.String() != "https://direct.zrh.cloudsigma.com/api/2.0/drives/"+id+"/download/" {
		t.Errorf("download from %s", req.URL)
	}
}

func TestTokenAuthAgainstSimulator(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, func(c *cloudsim.Config) { c.Token = "sim-token" }, nil)
	tok := e.client(func(c *cloudsigma.Config) { c.Username, c.Password, c.Token = "", "", "sim-token" })
	if _, err := tok.GetCapabilities(ctxT(t)); err != nil {
		t.Fatalf("bearer token refused: %v", err)
	}
	bad := e.client(func(c *cloudsigma.Config) { c.Username, c.Password, c.Token = "", "", "wrong-token" })
	if _, err := bad.GetCapabilities(ctxT(t)); !cloudsigma.IsUnauthorized(err) || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestCredentialsNeverInErrors collects every kind of error the client
// produces and searches them for the secrets in use.
func TestCredentialsNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "Sup3r-s3cret-in-url"
	e := newSimEnv(t, nil, nil)
	ctx := ctxT(t)
	var errs []error
	collect := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want an error", what)
			return
		}
		errs = append(errs, err)
	}

	wrong := e.client(func(c *cloudsigma.Config) { c.Password = secret })
	_, err := wrong.GetDrive(ctx, "00000000-0000-4000-8000-000000000000")
	collect("401", err)
	_, err = wrong.UploadImage(ctx, strings.NewReader("x"), 1)
	collect("upload 401", err)
	_, _, err = wrong.DownloadImage(ctx, "00000000-0000-4000-8000-000000000000")
	collect("download 401", err)
	_, err = e.c.GetDrive(ctx, "00000000-0000-4000-8000-000000000000")
	collect("404", err)

	// Transport failures; and credentials embedded in the URL, refused.
	dead := e.srv.URL[:strings.LastIndex(e.srv.URL, ":")] + ":1"
	c := e.client(func(c *cloudsigma.Config) { c.APIURL, c.Password = dead+"/api/2.0/", secret })
	_, err = c.GetCapabilities(ctx)
	collect("connection refused", err)
	_, err = c.UploadImage(ctx, strings.NewReader("x"), 1)
	collect("upload connection refused", err)
	_, err = cloudsigma.New(cloudsigma.Config{APIURL: strings.Replace(dead, "http://", "http://user:"+secret+"@", 1) + "/api/2.0/",
		AllowInsecureHTTP: true, Username: testUser, Password: secret})
	collect("credentials in the URL", err)

	for _, err := range errs {
		if s := err.Error(); strings.Contains(s, secret) || strings.Contains(s, testPassword) {
			t.Errorf("error reveals a credential: %q", s)
		}
	}
}

// TestConfigErrorsRedactURLCredentials: New's errors quote the API URL; a
// password embedded in it must not be quoted with it.
func TestConfigErrorsRedactURLCredentials(t *testing.T) {
	const secret = "Sup3r-s3cret-in-url"
	for _, raw := range []string{
		"http://user:" + secret + "@api.example.net/api/2.0/",
		"ftp://user:" + secret + "@api.example.net/api/2.0/",
		"https://user:" + secret + "@api.example.net/%zz",
	} {
		_, err := cloudsigma.New(cloudsigma.Config{APIURL: raw, Username: testUser, Password: testPassword})
		if err == nil {
			t.Errorf("%s accepted", raw)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("error reveals the URL's password: %q", err)
		}
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

// TestCredentialsInURL: credentials written into the API URL are refused,
// and the error does not repeat them.
func TestCredentialsInURL(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	u, _ := url.Parse(e.apiURL())
	u.User = url.UserPassword(testUser, testPassword)
	for _, cfg := range []cloudsigma.Config{
		{APIURL: u.String(), AllowInsecureHTTP: true},
		{APIURL: u.String(), AllowInsecureHTTP: true, Username: testUser, Password: testPassword},
		{APIURL: e.apiURL(), UploadURL: u.String(), AllowInsecureHTTP: true, Username: testUser, Password: testPassword},
	} {
		_, err := cloudsigma.New(cfg)
		if !errors.Is(err, cloudsigma.ErrCredentialsInURL) {
			t.Errorf("New with credentials in a URL: %v, want ErrCredentialsInURL", err)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("error %q shows the password", err)
		}
	}
}
