//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	authv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
)

// applier applies manifests with server-side apply, as `kubectl apply
// --server-side` does, so the API server validates them against its real
// schemas (CRDs included, once established).
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (e *env) newApplier() error {
	dyn, err := dynamic.NewForConfig(e.cluster.admin)
	if err != nil {
		return err
	}
	e.apply = &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.kube.Discovery()))}
	return nil
}

// decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// objects applies every object of data; with dryRun nothing is stored, and
// every object's error is returned, not just the first.
func (a *applier) objects(ctx context.Context, data []byte, dryRun bool) (int, error) {
	n, _, err := a.objectsExcept(ctx, data, dryRun, false)
	return n, err
}

// objectsExcept is objects that, with skipUnserved, passes over kinds this
// API server does not serve (a CRD of another project, such as the
// Prometheus operator's ServiceMonitor) and returns their kinds.
func (a *applier) objectsExcept(ctx context.Context, data []byte, dryRun, skipUnserved bool) (int, []string, error) {
	objs, err := decode(data)
	if err != nil {
		return 0, nil, err
	}
	var errs []error
	var skipped []string
	n := 0
	for _, o := range objs {
		err := a.object(ctx, o, dryRun)
		if skipUnserved && meta.IsNoMatchError(err) {
			skipped = append(skipped, o.GetKind())
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err))
		}
		n++
	}
	return n, skipped, errors.Join(errs...)
}

func (a *applier) object(ctx context.Context, o *unstructured.Unstructured, dryRun bool) error {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A CRD applied a moment ago: discovery is stale, not the object.
		a.mapper.Reset()
		if m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return err
		}
	}
	res := a.dyn.Resource(m.Resource)
	var ri dynamic.ResourceInterface = res
	if m.Scope.Name() == "namespace" {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = res.Namespace(ns)
	}
	body, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "cloudsigma-e2e", Force: ptr.To(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
	return err
}

// files applies manifest files of the repository, by path from its root.
func (e *env) applyFiles(ctx context.Context, paths ...string) (int, error) {
	n := 0
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(e.repo, p))
		if err != nil {
			return n, err
		}
		k, err := e.apply.objects(ctx, data, false)
		n += k
		if err != nil {
			return n, fmt.Errorf("%s: %w", p, err)
		}
	}
	return n, nil
}

// saKubeconfig writes a kubeconfig holding a token for a service account,
// minted through the TokenRequest API, as kubelet mounts one into a pod.
func (e *env) saKubeconfig(ctx context.Context, ns, name string) (string, error) {
	tr, err := e.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](4 * 3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", ns, name, err)
	}
	path := filepath.Join(e.cluster.dir, name+".kubeconfig")
	return path, e.cluster.writeKubeconfig(path, tr.Status.Token)
}
