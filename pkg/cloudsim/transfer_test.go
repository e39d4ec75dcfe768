package cloudsim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

func upload(t *testing.T, e *env, path string, body io.Reader, size int64, ctype string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url(path), body)
	req.ContentLength = size
	req.SetBasicAuth(testUser, testPass)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestUploadDownload(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Capabilities = DefaultCapabilities()
		c.Capabilities.Drives["dssd"] = SizeLimits{Min: 1 << 20, Max: 1 << 40}
	})
	// 4 MiB: random head and tail around a zero middle (stays sparse).
	img := make([]byte, 4<<20)
	_, _ = rand.Read(img[:1<<20])
	_, _ = rand.Read(img[3<<20:])
	want := sha256.Sum256(img)

	resp, id := upload(t, e, "/drives/upload/disk.raw", bytes.NewReader(img), int64(len(img)), "application/octet-stream")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("upload: %d %q", resp.StatusCode, id)
	}
	d, ok := e.sim.Drive(id)
	if !ok || d.Size != int64(len(img)) || d.Status != "unmounted" {
		t.Fatalf("uploaded drive: %+v", d)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(d.BackingFile, &st); err != nil {
		t.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > 3<<20 {
		t.Errorf("backing file not sparse: %d bytes allocated", allocated)
	}

	// Download: the client must follow the redirect.
	req, _ := http.NewRequest("GET", e.url("/drives/"+id+"/download/"), nil)
	req.SetBasicAuth(testUser, testPass)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r1, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r1.Body.Close()
	if r1.StatusCode != http.StatusFound || r1.Header.Get("Location") == "" {
		t.Fatalf("download: %d, want a redirect", r1.StatusCode)
	}
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, r2.Body)
	if err != nil {
		t.Fatal(err)
	}
	if r2.StatusCode != http.StatusOK || r2.Header.Get("Content-Type") != "application/octet-stream" ||
		r2.Header.Get("Content-Disposition") != "attachment; filename="+id {
		t.Fatalf("download headers: %d %v", r2.StatusCode, r2.Header)
	}
	if n != int64(len(img)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("downloaded %d bytes with a different sha256", n)
	}
}

func TestUploadRules(t *testing.T) {
	e := newEnv(t, nil)
	// Chunked (no Content-Length): refused, the length sets the size.
	resp, _ := upload(t, e, "/drives/upload/", io.MultiReader(strings.NewReader("abc")), -1, "application/octet-stream")
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked upload: %d", resp.StatusCode)
	}
	if resp, _ := upload(t, e, "/drives/upload/", strings.NewReader("abc"), 3, "text/plain"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong content type: %d", resp.StatusCode)
	}
	// Smaller than the minimum: the drive is resized up to it.
	resp, id := upload(t, e, "/drives/upload/", strings.NewReader("tiny image"), 10, "application/octet-stream")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("small upload: %d %s", resp.StatusCode, id)
	}
	e.waitStatus(id, "unmounted")
	d, _ := e.sim.Drive(id)
	if d.Size != 536870912 {
		t.Fatalf("small upload size %d, want the dssd minimum", d.Size)
	}
	if got := readAt(t, d.BackingFile, 0, 10); string(got) != "tiny image" {
		t.Fatalf("data %q", got)
	}
	if fi, _ := os.Stat(d.BackingFile); fi.Size() != d.Size {
		t.Fatalf("backing file size %d", fi.Size())
	}
	if n := len(e.sim.Drives()); n != 1 {
		t.Fatalf("%d drives after failed uploads", n)
	}
}
