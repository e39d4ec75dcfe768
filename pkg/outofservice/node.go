package outofservice

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
)

// readiness is the status of the node's Ready condition ("" without one)
// and when it last changed.
func readiness(n *corev1.Node) (corev1.ConditionStatus, time.Time) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, c.LastTransitionTime.Time
		}
	}
	return "", time.Time{}
}

// outOfServiceTaint is the node's out-of-service taint, whoever added it.
func outOfServiceTaint(n *corev1.Node) (corev1.Taint, bool) {
	for _, t := range n.Spec.Taints {
		if t.Key == TaintKey {
			return t, true
		}
	}
	return corev1.Taint{}, false
}

// isOurs: the taint exactly as this driver adds it.
func isOurs(t corev1.Taint) bool {
	return t.Key == TaintKey && t.Value == TaintValue && t.Effect == corev1.TaintEffectNoExecute
}

// nodePatch is a JSON merge patch of a Node's taints and this driver's
// annotation. The resourceVersion makes it conditional: the API server
// refuses it with 409 Conflict if the Node changed since it was read, so
// neither a taint nor an annotation someone else set meanwhile is lost.
// (Taints have no merge key: the list is replaced whole.)
type nodePatch struct {
	Metadata struct {
		ResourceVersion string             `json:"resourceVersion"`
		Annotations     map[string]*string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Taints []corev1.Taint `json:"taints"` // nil: null, removing the field
	} `json:"spec"`
}

// patch sets the node's taints, and the annotation to *server or, with
// server nil, removes it. It reports success; a failure is logged and left
// for the next pass.
func (r *Reconciler) patch(ctx context.Context, n *corev1.Node, taints []corev1.Taint, server *string) bool {
	var p nodePatch
	p.Metadata.ResourceVersion = n.ResourceVersion
	p.Metadata.Annotations = map[string]*string{Annotation: server}
	p.Spec.Taints = taints
	body, err := json.Marshal(p)
	if err != nil {
		klog.ErrorS(err, "Cannot encode the node patch", "node", n.Name)
		return false
	}
	err = r.cfg.Kube.PatchNode(ctx, n.Name, body)
	switch {
	case apierrors.IsConflict(err):
		klog.V(2).InfoS("Node changed while deciding on its out-of-service taint; the next pass decides again", "node", n.Name, "resourceVersion", n.ResourceVersion)
		return false
	case err != nil:
		klog.ErrorS(err, "Cannot patch the node's out-of-service taint; retrying next pass", "node", n.Name)
		return false
	}
	return true
}
