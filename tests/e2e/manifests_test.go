//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Our objects, as users apply them (deploy/kubernetes/kustomization.yaml
// lists them). controller.yaml and node.yaml would run the driver in pods,
// which need a kubelet; they are only validated (kustomizeDryRun).
var deployFiles = []string{
	"deploy/kubernetes/csidriver.yaml",
	"deploy/kubernetes/config.yaml",
	"deploy/kubernetes/rbac-controller.yaml",
	"deploy/kubernetes/rbac-node.yaml",
	"deploy/kubernetes/storageclass.yaml",
	"deploy/kubernetes/volumesnapshotclass.yaml",
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs installs the snapshot CRDs (upstream, at the snapshotter's
// version) and the snapshot-controller's RBAC that hack/e2e-binaries.sh put
// in bin-dir.
func (e *env) applyCRDs(ctx context.Context) (string, error) {
	crds, err := filepath.Glob(filepath.Join(*binDir, "crds", "*.yaml"))
	if err != nil || len(crds) == 0 {
		return "", fmt.Errorf("no snapshot CRDs in %s/crds (run hack/e2e-binaries.sh): %v", *binDir, err)
	}
	n := 0
	for _, f := range append(crds, filepath.Join(*binDir, "rbac-snapshot-controller.yaml")) {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		k, err := e.apply.objects(ctx, data, false)
		if n += k; err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
	}
	if err := e.eventually(ctx, "snapshot CRDs established", func(ctx context.Context) error {
		l, err := e.dyn.Resource(crdGVR).List(ctx, listAll)
		if err != nil {
			return err
		}
		established := 0
		for _, u := range l.Items {
			var crd apiextv1.CustomResourceDefinition
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
				return err
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
					established++
				}
			}
		}
		if established < len(crds) {
			return fmt.Errorf("%d of %d established", established, len(crds))
		}
		return nil
	}); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d objects", n), nil
}

// applyDeploy applies our own objects, as users do, and the chart's RBAC
// for the out-of-service reconciler (deploy/kubernetes leaves it off; the
// chart's controller ServiceAccount is the same one), which the failover
// step needs and which must be enough for it.
func (e *env) applyDeploy(ctx context.Context) (string, error) {
	n, err := e.applyFiles(ctx, deployFiles...)
	if err != nil {
		return "", err
	}
	out, err := runTool(ctx, "helm", "template", "cloudsigma-csi", filepath.Join(e.repo, "charts", "cloudsigma-csi"),
		"--namespace", sysNS, "--set", "controller.outOfServiceTaint.enabled=true",
		"--show-only", "templates/rbac-out-of-service.yaml")
	if err != nil {
		return "", err
	}
	m, err := e.apply.objects(ctx, out, false)
	return fmt.Sprintf("%d objects, and the chart's %d out-of-service RBAC objects", n, m), err
}

// The dry runs come before applyDeploy: against objects of the same names
// they would be updates, and CSIDriver and StorageClass fields are immutable.

// helmDryRun renders the chart with its defaults and with every optional
// part on, and has the API server validate each object (server-side apply,
// dry run): field names, types and enums against the real schemas.
func (e *env) helmDryRun(ctx context.Context) (string, error) {
	chart := filepath.Join(e.repo, "charts", "cloudsigma-csi")
	full := filepath.Join(e.repo, "tests", "packaging", "testdata", "values-full.yaml")
	variants := [][]string{nil}
	if _, err := os.Stat(full); err == nil {
		variants = append(variants, []string{"-f", full})
	}
	total := 0
	var skipped []string
	for _, extra := range variants {
		out, err := runTool(ctx, "helm", append([]string{"template", "cloudsigma-csi", chart, "--namespace", sysNS}, extra...)...)
		if err != nil {
			return "", err
		}
		n, skip, err := e.apply.objectsExcept(ctx, out, true, true)
		if err != nil {
			return "", fmt.Errorf("helm template %v: %w", extra, err)
		}
		total += n
		skipped = append(skipped, skip...)
	}
	detail := fmt.Sprintf("%d objects valid (%d value sets)", total, len(variants))
	if len(skipped) > 0 {
		detail += fmt.Sprintf("; not served here, so unchecked: %v", skipped)
	}
	return detail, nil
}

// kustomizeDryRun validates everything deploy/kubernetes holds, including
// the controller Deployment and node DaemonSet the test does not run.
func (e *env) kustomizeDryRun(ctx context.Context) (string, error) {
	out, err := runTool(ctx, "kustomize", "build", filepath.Join(e.repo, "deploy", "kubernetes"))
	if err != nil {
		return "", err
	}
	n, err := e.apply.objects(ctx, out, true)
	if err != nil {
		return "", err
	}
	// What a user types, with the kubectl of this Kubernetes release.
	for _, mode := range []string{"client", "server"} {
		cmd := exec.CommandContext(ctx, e.bin("kubectl"), "--kubeconfig", e.cluster.path("admin.kubeconfig"),
			"apply", "-k", filepath.Join(e.repo, "deploy", "kubernetes"), "--dry-run="+mode)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("kubectl apply -k deploy/kubernetes --dry-run=%s: %w\n%s", mode, err, out)
		}
	}
	return fmt.Sprintf("%d objects valid; kubectl apply -k --dry-run=client and =server succeed", n), nil
}

// runTool runs a tool hack/install-tools.sh installs (PATH, then GOPATH/bin).
func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		gopath, gerr := exec.Command("go", "env", "GOPATH").Output()
		if gerr != nil {
			return nil, fmt.Errorf("%s not found: %w", name, err)
		}
		path = filepath.Join(strings.SplitN(strings.TrimSpace(string(gopath)), ":", 2)[0], "bin", name)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}
