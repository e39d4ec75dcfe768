package outofservice_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/cloudsigma-csi/driver/pkg/outofservice"
)

// NewKube's REST clients against an HTTP API server: the requests the
// reconciler's RBAC allows, and the API server's errors as apierrors sees
// them (the reconciler tells a conflict and a missing CSINode apart).
func TestNewKubeSpeaksTheAPI(t *testing.T) {
	answer := func(w http.ResponseWriter, code int, obj any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(obj)
	}
	var patched string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes" && r.URL.Query().Get("resourceVersion") == "0":
			answer(w, http.StatusOK, corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
				Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "w1", ResourceVersion: "7"}}}})
		case r.Method == http.MethodGet && r.URL.Path == "/apis/storage.k8s.io/v1/csinodes/gone":
			answer(w, http.StatusNotFound, apierrors.NewNotFound(schema.GroupResource{Group: "storage.k8s.io", Resource: "csinodes"}, "gone").ErrStatus)
		case r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/w1" &&
			r.URL.Query().Get("fieldManager") == outofservice.FieldManager && r.Header.Get("Content-Type") == "application/merge-patch+json":
			b, _ := io.ReadAll(r.Body)
			patched = string(b)
			answer(w, http.StatusConflict, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "w1", nil).ErrStatus)
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusTeapot)
		}
	}))
	defer api.Close()
	kube, err := outofservice.NewKube(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nodes, err := kube.ListNodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name != "w1" || nodes[0].ResourceVersion != "7" {
		t.Fatalf("ListNodes = %+v, %v", nodes, err)
	}
	if _, err := kube.GetCSINode(ctx, "gone"); !apierrors.IsNotFound(err) {
		t.Errorf("GetCSINode of a missing CSINode: %v, want NotFound", err)
	}
	if err := kube.PatchNode(ctx, "w1", []byte(`{"spec":{"taints":null}}`)); !apierrors.IsConflict(err) {
		t.Errorf("PatchNode answered 409: %v, want a conflict", err)
	}
	if patched != `{"spec":{"taints":null}}` {
		t.Errorf("patch body %q", patched)
	}
}
