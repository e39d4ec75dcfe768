// Package cloudsigma is a typed client for the parts of the CloudSigma API 2.0
// a CSI driver needs: drives, snapshots, servers, capabilities, jobs and
// drive images. It retries what is safe to retry, keeps under the documented
// rate limits, and decodes the API's error array into *Error.
package cloudsigma

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/klog/v2"
)

// Config configures a Client. Either APIURL or Location is required.
type Config struct {
	// APIURL is the whole base URL, e.g. https://zrh.cloudsigma.com/api/2.0/.
	// Some locations use other hosts, so this wins over Location.
	APIURL string
	// Location is a location code (zrh, fra, ...) used when APIURL is empty.
	Location string
	// UploadURL is the base for drive image upload/download. Empty means
	// direct.<api host> for *.cloudsigma.com hosts, else APIURL.
	UploadURL string

	Username, Password string
	// Token, if set, is sent as a bearer token instead of Basic auth
	// (image upload supports only Basic and keeps using it).
	Token string

	// AllowInsecureHTTP permits plain http base URLs (the simulator).
	AllowInsecureHTTP bool

	// HTTPClient is used for every call; nil means a client with sane
	// timeouts. Wrap its Transport to add metrics.
	HTTPClient *http.Client

	Retry Retry
	// RequestsPerMinute and DeletesPerMinute cap the call rate; zero means
	// the documented limits (10000/min, DELETE 1000/min).
	RequestsPerMinute, DeletesPerMinute int
	// PageSize is the limit used when following list pages (default 100).
	PageSize int
	// MaxResponseBytes bounds one API answer read into memory (default
	// DefaultMaxResponseBytes); a larger one is an error, never truncated.
	MaxResponseBytes int64
	// MaxListItems bounds a listing followed page by page (default
	// DefaultMaxListItems); a longer one is an error that says so.
	MaxListItems int
	UserAgent    string
}

// Retry is the backoff policy for retryable failures.
type Retry struct {
	MaxAttempts int           // total attempts, default 5
	BaseDelay   time.Duration // first backoff, default 200ms
	MaxDelay    time.Duration // cap, default 5s
}

// String keeps the secrets out of logs and error messages that print a
// Config (%v and %+v).
func (c Config) String() string {
	return fmt.Sprintf("{APIURL:%s Location:%s UploadURL:%s Username:%s Password:%s Token:%s AllowInsecureHTTP:%v}",
		redactURL(c.APIURL), c.Location, redactURL(c.UploadURL), c.Username, secret(c.Password), secret(c.Token), c.AllowInsecureHTTP)
}

// GoString does the same for %#v.
func (c Config) GoString() string { return "cloudsigma.Config" + c.String() }

func secret(s string) string {
	if s == "" {
		return ""
	}
	return "xxxxx"
}

// Client talks to one CloudSigma location. It is safe for concurrent use.
type Client struct {
	base, upload *url.URL
	cfg          Config
	http         *http.Client
	// transfer streams drive images: like http but without an overall
	// timeout, which would cut off any image that takes longer to move
	// (http.Client.Timeout covers reading the body); ctx bounds it.
	transfer *http.Client
	limiter  *rate.Limiter
	deletes  *rate.Limiter
}

// locationCode is what a location code may look like (zrh, fra, sjc, ...);
// anything else would let the code choose another host.
var locationCode = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// LocationURL is the documented API base URL of a location.
func LocationURL(location string) string {
	return "https://" + location + ".cloudsigma.com/api/2.0/"
}

// Bounds on what the client reads. A page of 100 drives with their meta is
// well under 1 MiB; 8 MiB leaves room and fits the controller's memory limit
// (128 Mi) many times over, even with several calls in flight.
const (
	DefaultMaxResponseBytes = 8 << 20
	DefaultMaxListItems     = 20000
)

// ErrTooLarge: an answer or a listing passed the client's bounds.
var ErrTooLarge = errors.New("beyond the client's bounds")

// Configuration errors New wraps, so a command can name its own flag or
// variable for the fix.
var (
	ErrInsecureURL      = errors.New("plain http API URL refused: credentials would travel in clear text")
	ErrNoCredentials    = errors.New("credentials are required (username and password, or a token)")
	ErrCredentialsInURL = errors.New("credentials inside the API URL are refused: a URL shows in pod specs, process lists and logs")
)

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	raw := cfg.APIURL
	if raw == "" {
		if cfg.Location == "" {
			return nil, errors.New("cloudsigma: an API URL or a location is required")
		}
		if !locationCode.MatchString(cfg.Location) {
			return nil, fmt.Errorf("cloudsigma: invalid location code %q", cfg.Location)
		}
		raw = LocationURL(cfg.Location)
	}
	base, err := parseBase(raw, cfg.AllowInsecureHTTP)
	if err != nil {
		return nil, err
	}
	if base.User != nil {
		return nil, fmt.Errorf("cloudsigma: %w (%s)", ErrCredentialsInURL, base.Redacted())
	}
	upload := base
	if cfg.UploadURL != "" {
		if upload, err = parseBase(cfg.UploadURL, cfg.AllowInsecureHTTP); err != nil {
			return nil, err
		}
		if upload.User != nil {
			return nil, fmt.Errorf("cloudsigma: upload URL: %w", ErrCredentialsInURL)
		}
	} else if strings.HasSuffix(base.Hostname(), ".cloudsigma.com") {
		u := *base
		u.Host = "direct." + base.Host
		upload = &u
	}
	if cfg.Username == "" && cfg.Token == "" {
		return nil, fmt.Errorf("cloudsigma: %w", ErrNoCredentials)
	}
	if cfg.Retry.MaxAttempts <= 0 {
		cfg.Retry.MaxAttempts = 5
	}
	if cfg.Retry.BaseDelay <= 0 {
		cfg.Retry.BaseDelay = 200 * time.Millisecond
	}
	if cfg.Retry.MaxDelay <= 0 {
		cfg.Retry.MaxDelay = 5 * time.Second
	}
	if cfg.RequestsPerMinute <= 0 {
		cfg.RequestsPerMinute = 10000
	}
	if cfg.DeletesPerMinute <= 0 {
		cfg.DeletesPerMinute = 1000
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxListItems <= 0 {
		cfg.MaxListItems = DefaultMaxListItems
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cloudsigma-csi-driver"
	}
	hc := &http.Client{Timeout: 2 * time.Minute}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient // the caller's client is not modified
		hc = &copied
	}
	hc.CheckRedirect = noDowngrade(hc.CheckRedirect)
	transfer := *hc
	transfer.Timeout = 0
	return &Client{
		base: base, upload: upload, cfg: cfg, http: hc, transfer: &transfer,
		limiter: perMinute(cfg.RequestsPerMinute),
		deletes: perMinute(cfg.DeletesPerMinute),
	}, nil
}

// perMinute allows n calls per minute with a burst of a 1/60th, so a short
// flurry (16 attaches at once) is not serialized needlessly. The burst is
// taken out of the steady rate: no 60 second window ever holds more than n
// calls, not even the first one.
func perMinute(n int) *rate.Limiter {
	burst := max(1, n/60)
	if n <= burst {
		return rate.NewLimiter(rate.Limit(float64(n)/60), burst)
	}
	return rate.NewLimiter(rate.Limit(float64(n-burst)/60), burst)
}

// noDowngrade refuses to follow a redirect from https to plain http, which
// would send the Authorization header in clear text (Go forwards it to the
// same host whatever the scheme), then applies next, or Go's default limit.
func noDowngrade(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("cloudsigma: refusing a redirect from https to %s", req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

func parseBase(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("cloudsigma: invalid API URL %q", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, fmt.Errorf("cloudsigma: %w: %q; allow it explicitly for a simulator", ErrInsecureURL, u.Redacted())
		}
	default:
		return nil, fmt.Errorf("cloudsigma: unsupported scheme in API URL %q", u.Redacted())
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// BaseURL is the API base URL in use.
func (c *Client) BaseURL() string { return c.base.Redacted() }

// request describes one API call.
type request struct {
	method string
	path   string // relative to the base, e.g. "drives/detail/"
	query  url.Values
	body   any // JSON encoded when non-nil
	// idempotent marks POSTs that are safe to repeat; GET, PUT and DELETE
	// always are.
	idempotent bool
	// readModifyWrite marks a body built from an object as last read (a
	// server's or drive's full definition). Repeating it after a conflict
	// or an unknown fate would write back stale fields over someone else's
	// change, so it is repeated only when it was never sent; the caller
	// re-reads and tries again.
	readModifyWrite bool
}

func (r request) safeToRepeat() bool {
	return (r.method != http.MethodPost || r.idempotent) && !r.readModifyWrite
}

// do performs the call with rate limiting and retries, and decodes a JSON
// response into out (when out is non-nil and the response has a body).
func (c *Client) do(ctx context.Context, r request, out any) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("cloudsigma: encoding %s %s: %w", r.method, r.path, err)
		}
	}
	if err := checkPath(r.path); err != nil {
		return err
	}
	u := c.base.ResolveReference(&url.URL{Path: r.path, RawQuery: r.query.Encode()})
	for attempt := 1; ; attempt++ {
		body, err := c.once(ctx, r, u, payload)
		if err == nil {
			if out == nil || len(bytes.TrimSpace(body)) == 0 {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("cloudsigma: decoding %s %s: %w", r.method, r.path, err)
			}
			return nil
		}
		if attempt >= c.cfg.Retry.MaxAttempts || !c.retryable(r, err) {
			return err
		}
		delay := backoff(c.cfg.Retry.BaseDelay, c.cfg.Retry.MaxDelay, attempt)
		if apiErr, ok := AsError(err); ok && apiErr.RetryAfter > delay {
			// The API said when to come back; sooner only earns another
			// refusal. A wait beyond the caller's deadline ends in its error.
			delay = min(apiErr.RetryAfter, maxRetryAfter)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return err
			}
		}
		klog.V(3).InfoS("Retrying CloudSigma call", "method", r.method, "path", r.path, "attempt", attempt, "delay", delay, "err", err)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// maxRetryAfter bounds a Retry-After the client honours in one wait.
const maxRetryAfter = 2 * time.Minute

// retryable decides whether a failed attempt may be repeated. Idempotent
// calls repeat on transport errors, 5xx and concurrency errors. A POST is
// repeated only when the API explicitly rejected it (a concurrency conflict
// or the rate limit: nothing was done) or the connection was never
// established: a POST whose fate is unknown may have created a drive, and
// repeating it makes two. A read-modify-write is never repeated once sent
// (see request).
func (c *Client) retryable(r request, err error) bool {
	if ctxErr(err) {
		return false
	}
	if apiErr, ok := AsError(err); ok {
		// Both are explicit rejections: nothing was done.
		if apiErr.Type == ErrTypeConcurrency || apiErr.StatusCode == http.StatusTooManyRequests {
			return !r.readModifyWrite
		}
		if !r.safeToRepeat() {
			return false
		}
		return apiErr.StatusCode == http.StatusServiceUnavailable ||
			apiErr.StatusCode == http.StatusBadGateway ||
			apiErr.StatusCode == http.StatusGatewayTimeout ||
			apiErr.StatusCode == http.StatusTooManyRequests ||
			apiErr.StatusCode == http.StatusInternalServerError && r.method == http.MethodGet
	}
	var te *transportError
	if errors.As(err, &te) {
		return r.safeToRepeat() || te.notSent
	}
	return false
}

func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// transportError is a failure below HTTP (dial, reset, timeout).
type transportError struct {
	err     error
	notSent bool // the request provably never reached the server
}

func (e *transportError) Error() string { return "cloudsigma: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func (c *Client) once(ctx context.Context, r request, u *url.URL, payload []byte) ([]byte, error) {
	lim := c.limiter
	if r.method == http.MethodDelete {
		lim = c.deletes
	}
	if err := waitLimiter(ctx, lim); err != nil {
		return nil, err
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	c.authorize(req, false)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &transportError{err: stripURLCreds(err), notSent: isDialError(err)}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err == nil && int64(len(respBody)) > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("cloudsigma: %s %s: the answer is %w: more than %d bytes (raise the limit with --api-max-response-bytes)",
			r.method, u.Path, ErrTooLarge, c.cfg.MaxResponseBytes)
	}
	reqID := resp.Header.Get("X-REQUEST-ID")
	klog.V(4).InfoS("CloudSigma call", "method", r.method, "path", u.Path, "status", resp.StatusCode, "requestID", reqID, "duration", time.Since(start))
	if err != nil {
		return nil, &transportError{err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := decodeError(resp.StatusCode, respBody, reqID, r.method, u.Path)
		apiErr.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, apiErr
	}
	return respBody, nil
}

// waitLimiter waits for the rate limiter. The limiter refuses at once when
// the wait would outlast ctx's deadline; that is reported as the deadline
// error it anticipates, so callers see a context error either way.
func waitLimiter(ctx context.Context, lim *rate.Limiter) error {
	err := lim.Wait(ctx)
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("cloudsigma: rate limit: %w (%v)", context.DeadlineExceeded, err)
}

// checkPath refuses an object path with an empty or dot segment: an empty
// or ".." UUID would otherwise address another resource (GET drives//
// is the list, DELETE drives/../ the API root).
func checkPath(p string) error {
	segs := strings.Split(strings.TrimSuffix(p, "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("cloudsigma: invalid object path %q: empty or dot segment (missing or bad UUID)", p)
		}
	}
	return nil
}

func (c *Client) authorize(req *http.Request, basicOnly bool) {
	if c.cfg.Token != "" && !(basicOnly && c.cfg.Username != "") {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	} else {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
}

func isDialError(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.Contains(err.Error(), "dial ") || strings.Contains(err.Error(), "connection refused")
}

// stripURLCreds keeps credentials embedded in a URL out of error messages.
func stripURLCreds(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.User != nil {
			u.User = nil
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// redactURL hides userinfo in a URL that may not parse, so a password typed
// into --api-url never reaches an error message or a log.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if scheme := strings.Index(raw, "://"); scheme >= 0 && scheme < at {
			return raw[:scheme+3] + "xxxxx" + raw[at:]
		}
		return "xxxxx" + raw[at:]
	}
	return raw
}
