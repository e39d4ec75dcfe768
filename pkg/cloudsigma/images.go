package cloudsigma

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// UploadImage creates a drive from a raw disk image. The API takes the size
// of the new drive from Content-Length, so size must be the exact number of
// bytes r yields; the body is streamed, never buffered. Only Basic auth is
// accepted by the upload endpoint. An upload is not repeated on failure: a
// partial upload may have created a drive. A reader that yields fewer or
// more bytes than size fails the upload before its last byte is sent, so no
// truncated drive is created. No overall timeout applies: ctx bounds it.
func (c *Client) UploadImage(ctx context.Context, r io.Reader, size int64) (string, error) {
	if size <= 0 {
		return "", fmt.Errorf("cloudsigma: upload size must be positive, got %d", size)
	}
	if err := waitLimiter(ctx, c.limiter); err != nil {
		return "", err
	}
	u := c.upload.ResolveReference(&url.URL{Path: "drives/upload/"})
	src := &exactReader{r: r, left: size}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), src)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.GetBody = nil // a redirect must not replay a half-read stream
	c.authorize(req, true)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := c.transfer.Do(req)
	if err != nil {
		if err := src.failure(); err != nil {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &transportError{err: stripURLCreds(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	klog.V(4).InfoS("CloudSigma upload", "path", u.Path, "status", resp.StatusCode, "bytes", size, "requestID", resp.Header.Get("X-REQUEST-ID"), "duration", time.Since(start))
	if err != nil {
		return "", &transportError{err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", decodeError(resp.StatusCode, body, resp.Header.Get("X-REQUEST-ID"), http.MethodPost, u.Path)
	}
	return parseUploadedUUID(body)
}

// parseUploadedUUID reads the drive UUID the upload returns: documented as
// plain text, tolerated as a JSON string or a drive object.
func parseUploadedUUID(body []byte) (string, error) {
	s := strings.TrimSpace(string(body))
	var js string
	if json.Unmarshal(body, &js) == nil {
		s = js
	} else if strings.HasPrefix(s, "{") {
		var d Drive
		if err := json.Unmarshal(body, &d); err == nil && d.UUID != "" {
			s = d.UUID
		}
	}
	if len(s) != 36 || strings.Count(s, "-") != 4 {
		return "", fmt.Errorf("cloudsigma: upload returned no drive UUID: %q", excerpt(body))
	}
	return s, nil
}

// DownloadImage streams a drive's raw image. The API answers with a
// redirect, which is followed (never from https to plain http; Go drops the
// Authorization header on a redirect to another host). The caller reads
// the body while ctx lives and closes it; no overall timeout applies. Its
// length is known when the server sends Content-Length (else -1).
func (c *Client) DownloadImage(ctx context.Context, uuid string) (io.ReadCloser, int64, error) {
	p := drivePath(uuid) + "download/"
	if err := checkPath(p); err != nil {
		return nil, 0, err
	}
	if err := waitLimiter(ctx, c.limiter); err != nil {
		return nil, 0, err
	}
	u := c.upload.ResolveReference(&url.URL{Path: p})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	c.authorize(req, true)
	resp, err := c.transfer.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, &transportError{err: stripURLCreds(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, 0, decodeError(resp.StatusCode, body, resp.Header.Get("X-REQUEST-ID"), http.MethodGet, u.Path)
	}
	return resp.Body, resp.ContentLength, nil
}

// exactReader passes on exactly left bytes of r and fails if r has fewer or
// more. It holds back the final byte until it has checked that r is
// exhausted: a body the server received in full has created a drive, so a
// mismatch must abort the request before that. The transport may read it
// from another goroutine while Do returns, hence the lock.
type exactReader struct {
	r    io.Reader
	left int64
	mu   sync.Mutex
	err  error
}

// failure is the mismatch or read error that stopped the body, if any.
func (e *exactReader) failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *exactReader) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (e *exactReader) read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if e.left == 1 {
		// The last byte: read it, then make sure nothing follows.
		var last [1]byte
		if _, err := io.ReadFull(e.r, last[:]); err != nil {
			return 0, fmt.Errorf("cloudsigma: upload source ended 1 byte short of the declared size: %w", err)
		}
		var extra [1]byte
		n, err := io.ReadFull(e.r, extra[:])
		if n > 0 {
			return 0, errors.New("cloudsigma: upload source is longer than the declared size")
		}
		if err != io.EOF {
			return 0, fmt.Errorf("cloudsigma: checking the end of the upload source: %w", err)
		}
		p[0] = last[0]
		e.left = 0
		return 1, nil
	}
	if int64(len(p)) > e.left-1 {
		p = p[:e.left-1]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		// left is at least 1 here: the source ended early.
		return n, fmt.Errorf("cloudsigma: upload source ended %d bytes short of the declared size", e.left)
	}
	return n, err
}
