package packaging

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeRegistry serves the Registry HTTP API v2's manifest HEAD as Docker
// Hub, gcr.io and registry.k8s.io do for anonymous pulls: 401 with a Bearer
// challenge, a token from the realm, then the tag's digest. Each digest is
// derived from the repository, the tag and a generation, so a test can move
// every tag at once.
type fakeRegistry struct {
	*httptest.Server
	mu       sync.Mutex
	gen      int
	accepts  []string
	requests int
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	r := &fakeRegistry{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("service") != "fake" || !strings.HasPrefix(req.URL.Query().Get("scope"), "repository:") {
			http.Error(w, "bad token request "+req.URL.RawQuery, http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"token":"tok"}`)
	})
	mux.HandleFunc("HEAD /v2/", func(w http.ResponseWriter, req *http.Request) {
		path, tag, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/")
		if !ok {
			http.NotFound(w, req)
			return
		}
		if req.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake",scope="repository:%s:pull"`, r.URL, path))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		r.accepts = append(r.accepts, req.Header.Get("Accept"))
		w.Header().Set("Docker-Content-Digest", r.digestLocked(path, tag))
	})
	r.Server = httptest.NewServer(mux)
	t.Cleanup(r.Close)
	return r
}

func (r *fakeRegistry) digest(path, tag string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.digestLocked(path, tag)
}

func (r *fakeRegistry) digestLocked(path, tag string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprintf("%s:%s#%d", path, tag, r.gen))))
}

// TestPinImages runs hack/pin-images.sh on a copy of the Dockerfile and the
// chart's values against a fake registry: it rewrites the digests (tags and
// everything else untouched), reports nothing stale right after, and with
// --check finds a moved tag without writing.
func TestPinImages(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("jq is needed (hack/install-tools.sh installs it)")
	}
	reg := newFakeRegistry(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "charts", "cloudsigma-csi"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Dockerfile", "charts/cloudsigma-csi/values.yaml"} {
		if err := os.WriteFile(filepath.Join(root, f), readFile(t, filepath.Join(repoRoot(t), f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(repoRoot(t), "hack", "pin-images.sh")
	pin := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{script, "--root", root}, args...)...)
		cmd.Env = append(os.Environ(), "PIN_IMAGES_REGISTRY="+reg.URL)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := pin(); err != nil {
		t.Fatalf("pin-images: %v\n%s", err, out)
	}
	docker := string(readFile(t, filepath.Join(root, "Dockerfile")))
	values := string(readFile(t, filepath.Join(root, "charts/cloudsigma-csi/values.yaml")))
	for _, want := range []string{
		"ARG GO_IMAGE=golang:1.26.8-bookworm@" + reg.digest("library/golang", "1.26.8-bookworm"),
		"ARG CONTROLLER_BASE=gcr.io/distroless/static-debian12:nonroot@" + reg.digest("distroless/static-debian12", "nonroot"),
		"ARG NODE_BASE=debian:12.13-slim@" + reg.digest("library/debian", "12.13-slim"),
	} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, want := range []string{
		"    repository: registry.k8s.io/sig-storage/csi-provisioner\n    tag: v6.3.0\n    digest: \"" + reg.digest("sig-storage/csi-provisioner", "v6.3.0") + "\"",
		"    repository: registry.k8s.io/sig-storage/livenessprobe\n    tag: v2.20.0\n    digest: \"" + reg.digest("sig-storage/livenessprobe", "v2.20.0") + "\"",
		// The driver's own images have no tag to resolve: left alone.
		"    repository: ghcr.io/cloudsigma-csi/cloudsigma-csi-node\n    tag: \"\"\n    digest: \"\"",
	} {
		if !strings.Contains(values, want) {
			t.Errorf("values.yaml lacks\n%s", want)
		}
	}
	if n := strings.Count(values, "digest: \"sha256:"); n != 6 {
		t.Errorf("%d sidecar digests pinned, want 6", n)
	}
	for _, a := range reg.accepts {
		if !strings.Contains(a, "application/vnd.oci.image.index.v1+json") {
			t.Errorf("Accept %q: without the index type a registry answers with one platform's manifest", a)
		}
	}
	if out, err := pin("--check"); err != nil || !strings.Contains(out, "every pin is what its registry serves") {
		t.Errorf("--check right after pinning: %v\n%s", err, out)
	}

	reg.mu.Lock()
	reg.gen++
	reg.mu.Unlock()
	out, err := pin("--check")
	if err == nil || !strings.Contains(out, "Dockerfile NODE_BASE (debian:12.13-slim)") || !strings.Contains(out, "chart images.attacher") {
		t.Errorf("--check after every tag moved: %v, want exit 1 naming the stale pins\n%s", err, out)
	}
	if got := string(readFile(t, filepath.Join(root, "Dockerfile"))); got != docker {
		t.Error("--check changed the Dockerfile")
	}
}
