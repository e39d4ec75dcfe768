package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// Off (the default), no Kubernetes client is built: the driver needs no API
// access and no RBAC.
func TestOutOfServiceOffNeedsNoKubernetes(t *testing.T) {
	kube, err := outOfServiceKube(parse(t))
	if kube != nil || err != nil {
		t.Fatalf("outOfServiceKube with the feature off: %v, %v; want nil, nil", kube, err)
	}
}

// On outside a cluster without --kubeconfig, run fails before it serves
// anything, naming the ways out.
func TestOutOfServiceOutsideAClusterIsRefused(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	sock := filepath.Join(t.TempDir(), "csi.sock")
	cfg := parse(t, "--endpoint=unix://"+sock, "--mode=controller", "--location=zrh", "--out-of-service-taint")
	err := run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") || !strings.Contains(err.Error(), "service account") {
		t.Fatalf("run: %v, want an error naming --kubeconfig and the service account", err)
	}
	if _, statErr := os.Stat(sock); statErr == nil {
		t.Error("run created the CSI socket before failing")
	}

	cfg = parse(t, "--mode=controller", "--out-of-service-taint", "--kubeconfig="+filepath.Join(t.TempDir(), "missing"))
	if _, err := outOfServiceKube(cfg); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("missing kubeconfig: %v, want an error naming --kubeconfig", err)
	}
}

type stoppedCloud struct{}

func (stoppedCloud) GetServer(_ context.Context, uuid string) (*cloudsigma.Server, error) {
	return &cloudsigma.Server{UUID: uuid, Status: cloudsigma.StatusStopped}, nil
}

// With --kubeconfig the reconciler talks to that API server: it lists the
// Nodes from the watch cache, reads the CSINode of a dead one, and taints it
// with a merge patch conditional on the Node's resourceVersion.
func TestOutOfServiceTaintsThroughTheAPI(t *testing.T) {
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	nodeJSON := `{"kind":"Node","apiVersion":"v1","metadata":{"name":"w1","resourceVersion":"77"},` +
		`"status":{"conditions":[{"type":"Ready","status":"Unknown","lastTransitionTime":"` + since + `"}]}}`
	var mu sync.Mutex
	var seen []string
	patched := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.UserAgent())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes":
			io.WriteString(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[`+nodeJSON+`]}`)
		case r.Method == http.MethodGet && r.URL.Path == "/apis/storage.k8s.io/v1/csinodes/w1":
			io.WriteString(w, `{"kind":"CSINode","apiVersion":"storage.k8s.io/v1","metadata":{"name":"w1"},"spec":{"drivers":[{"name":"csi.cloudsigma.com","nodeID":"srv-1"}]}}`)
		case r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/w1":
			body, _ := io.ReadAll(r.Body)
			select {
			case patched <- r.Header.Get("Content-Type") + " " + string(body):
			default:
			}
			io.WriteString(w, nodeJSON)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+api.URL+`"}}]
users: [{name: u, user: {token: t0ken}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}

	kube, err := outOfServiceKube(parse(t, "--mode=controller", "--out-of-service-taint", "--kubeconfig="+kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startOutOfService(ctx, kube, stoppedCloud{}, 5*time.Minute, time.Minute); err != nil {
		t.Fatal(err)
	}
	var patch string
	select {
	case patch = <-patched:
	case <-time.After(20 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no patch of the dead node; requests: %v", seen)
	}
	cancel()
	var body struct {
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Taints []struct{ Key, Value, Effect string } `json:"taints"`
		} `json:"spec"`
	}
	contentType, raw, _ := strings.Cut(patch, " ")
	if contentType != "application/merge-patch+json" {
		t.Errorf("patch content type %q, want a JSON merge patch", contentType)
	}
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatalf("patch %s: %v", raw, err)
	}
	if body.Metadata.ResourceVersion != "77" || body.Metadata.Annotations["csi.cloudsigma.com/out-of-service-by-driver"] != "srv-1" ||
		len(body.Spec.Taints) != 1 || body.Spec.Taints[0].Key != "node.kubernetes.io/out-of-service" ||
		body.Spec.Taints[0].Value != "nodeshutdown" || body.Spec.Taints[0].Effect != "NoExecute" {
		t.Errorf("patch %s", raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || !strings.HasPrefix(seen[0], "GET /api/v1/nodes?") || !strings.Contains(seen[0], "resourceVersion=0") ||
		!strings.Contains(seen[0], " cloudsigma-csi-driver/") {
		t.Errorf("first request %q, want a list from the watch cache with the driver's user agent", seen)
	}
}
