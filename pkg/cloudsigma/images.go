package cloudsigma

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// UploadImage creates a drive from a raw disk image. The API takes the size
// of the new drive from Content-Length, so size must be the exact number of
// bytes r yields; the body is streamed, never buffered. Only Basic auth is
// accepted by the upload endpoint. An upload is not repeated on failure: a
// partial upload may have created a drive.
func (c *Client) UploadImage(ctx context.Context, r io.Reader, size int64) (string, error) {
	if size <= 0 {
		return "", fmt.Errorf("cloudsigma: upload size must be positive, got %d", size)
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return "", err
	}
	u := c.upload.ResolveReference(&url.URL{Path: "drives/upload/"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), io.LimitReader(r, size))
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	c.authorize(req, true)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
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
// redirect, which is followed. The caller closes the returned body; its
// length is known when the server sends Content-Length (else -1).
func (c *Client) DownloadImage(ctx context.Context, uuid string) (io.ReadCloser, int64, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, 0, err
	}
	u := c.upload.ResolveReference(&url.URL{Path: drivePath(uuid) + "download/"})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	c.authorize(req, true)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, &transportError{err: stripURLCreds(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, 0, decodeError(resp.StatusCode, body, resp.Header.Get("X-REQUEST-ID"), http.MethodGet, u.Path)
	}
	return resp.Body, resp.ContentLength, nil
}
