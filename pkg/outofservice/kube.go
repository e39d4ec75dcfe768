package outofservice

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// Kube is what the reconciler asks of the Kubernetes API: three calls,
// which its RBAC grants (list and patch nodes, get csinodes).
type Kube interface {
	ListNodes(ctx context.Context) ([]corev1.Node, error)
	GetCSINode(ctx context.Context, name string) (*storagev1.CSINode, error)
	// PatchNode applies a JSON merge patch; errors are the API server's
	// (apierrors.IsConflict and IsNotFound work on them).
	PatchNode(ctx context.Context, name string, mergePatch []byte) error
}

// NewKube is Kube over REST clients of the two API groups it reads, with a
// scheme of just their types. client-go's typed clients would register
// every API group's types at start: about 12 MiB more resident memory in
// every driver process, node plugins included, for a controller feature.
func NewKube(cfg *rest.Config) (Kube, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, storagev1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	core, err := restClient(cfg, "/api", corev1.SchemeGroupVersion, codecs)
	if err != nil {
		return nil, err
	}
	storage, err := restClient(cfg, "/apis", storagev1.SchemeGroupVersion, codecs)
	if err != nil {
		return nil, err
	}
	return restKube{core: core, storage: storage}, nil
}

func restClient(cfg *rest.Config, apiPath string, gv schema.GroupVersion, codecs runtime.NegotiatedSerializer) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.APIPath, c.GroupVersion, c.NegotiatedSerializer = apiPath, &gv, codecs
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

type restKube struct{ core, storage *rest.RESTClient }

func (k restKube) ListNodes(ctx context.Context) ([]corev1.Node, error) {
	var list corev1.NodeList
	// resourceVersion=0: the API server's cache will do, as for an informer.
	err := k.core.Get().Resource("nodes").Param("resourceVersion", "0").Do(ctx).Into(&list)
	return list.Items, err
}

func (k restKube) GetCSINode(ctx context.Context, name string) (*storagev1.CSINode, error) {
	var n storagev1.CSINode
	if err := k.storage.Get().Resource("csinodes").Name(name).Do(ctx).Into(&n); err != nil {
		return nil, err
	}
	return &n, nil
}

func (k restKube) PatchNode(ctx context.Context, name string, mergePatch []byte) error {
	return k.core.Patch(types.MergePatchType).Resource("nodes").Name(name).
		Param("fieldManager", FieldManager).Body(mergePatch).Do(ctx).Error()
}
