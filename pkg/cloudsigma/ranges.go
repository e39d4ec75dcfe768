package cloudsigma

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"k8s.io/klog/v2"
)

// ReadDriveRange reads n bytes of a drive's image from offset off through
// the download endpoint (manual 10.2) with an HTTP Range, following its
// redirect. A server that ignores the Range (200) is read up to the n
// bytes wanted and the rest is not fetched. Fewer bytes come back only at
// the end of the image. It is repeated like a GET on transport errors and
// 5xx, within the client's retry policy.
func (c *Client) ReadDriveRange(ctx context.Context, uuid string, off, n int64) ([]byte, error) {
	p := drivePath(uuid) + "download/"
	if err := checkPath(p); err != nil {
		return nil, err
	}
	if off < 0 || n <= 0 || n > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("cloudsigma: range %d+%d of drive %s: want 0 < length <= %d", off, n, uuid, c.cfg.MaxResponseBytes)
	}
	u := c.upload.ResolveReference(&url.URL{Path: p})
	for attempt := 1; ; attempt++ {
		b, err := c.readRange(ctx, u, off, n)
		if err == nil || attempt >= c.cfg.Retry.MaxAttempts || !c.retryable(request{method: http.MethodGet}, err) {
			return b, err
		}
		if err := sleep(ctx, backoff(c.cfg.Retry.BaseDelay, c.cfg.Retry.MaxDelay, attempt)); err != nil {
			return nil, err
		}
	}
}

func (c *Client) readRange(ctx context.Context, u *url.URL, off, n int64) ([]byte, error) {
	if err := waitLimiter(ctx, c.limiter); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	c.authorize(req, true)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &transportError{err: stripURLCreds(err)}
	}
	defer resp.Body.Close()
	klog.V(4).InfoS("CloudSigma range read", "path", u.Path, "status", resp.StatusCode, "range", req.Header.Get("Range"), "duration", time.Since(start))
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
				return nil, &transportError{err: err}
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		return nil, nil // at or past the end of the image
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeError(resp.StatusCode, body, resp.Header.Get("X-REQUEST-ID"), http.MethodGet, u.Path)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, n))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &transportError{err: err}
	}
	return b, nil
}
