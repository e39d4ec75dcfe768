// Package outofservice marks dead nodes out of service, the step of
// Kubernetes' non-graceful node shutdown an operator otherwise takes by hand.
// A Node NotReady for a while whose CloudSigma server is stopped gets the
// taint node.kubernetes.io/out-of-service=nodeshutdown:NoExecute: Kubernetes
// then force-deletes its pods and force-detaches their volumes, so
// StatefulSets start them elsewhere. When the server runs again and the
// node is Ready, the taint goes, but only a taint this package added.
//
// The reconciler lists Nodes periodically rather than watching them: what
// makes a node eligible is time passing (NotReady for --out-of-service-after)
// and the server's state in CloudSigma, and neither produces a Node event,
// so a watch would still need the same periodic pass. The list is served
// from the API server's watch cache (resourceVersion "0"); CSINodes are read
// one by one, only for the few nodes that are candidates, and CloudSigma is
// asked only about those. Every change is a patch that carries the
// resourceVersion the decision was made on, so a concurrent edit of the Node
// fails the patch (409) instead of being overwritten; the next pass decides
// again on the new state.
package outofservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

const (
	// TaintKey and TaintValue are the taint of non-graceful node shutdown,
	// with the NoExecute effect.
	TaintKey   = corev1.TaintNodeOutOfService
	TaintValue = "nodeshutdown"
	// Annotation on a Node records that this driver added the taint; its
	// value is the CloudSigma server UUID that was stopped. Without it the
	// taint is an operator's and is never removed here.
	Annotation = "csi.cloudsigma.com/out-of-service-by-driver"
	// DefaultInterval is the time between two passes over the Nodes.
	DefaultInterval = 30 * time.Second
	// FieldManager names this reconciler in the Nodes' managedFields.
	FieldManager = "cloudsigma-csi-out-of-service"
)

// Cloud is the part of the CloudSigma API the reconciler reads.
type Cloud interface {
	GetServer(ctx context.Context, uuid string) (*cloudsigma.Server, error)
}

// Config configures a Reconciler.
type Config struct {
	Kube  Kube
	Cloud Cloud
	// After is how long a node must have been NotReady (its Ready condition
	// False or Unknown) before it may be tainted.
	After time.Duration
	// Interval between passes; 0 means DefaultInterval.
	Interval time.Duration
	// DriverName whose CSINode entry holds the server UUID; "" means
	// params.DriverName.
	DriverName string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Reconciler adds and removes the out-of-service taint. Its passes run one
// at a time (Run); Sync is not safe for concurrent use.
type Reconciler struct {
	cfg Config
	// reported is what was last logged at level 0 about each node, so a
	// node that stays down for hours logs its state once, not every pass.
	reported map[string]string
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.Kube == nil:
		return nil, errors.New("outofservice: no Kubernetes client")
	case cfg.Cloud == nil:
		return nil, errors.New("outofservice: no CloudSigma client")
	case cfg.After < 0:
		return nil, fmt.Errorf("outofservice: negative grace time %s", cfg.After)
	case cfg.Interval < 0:
		return nil, fmt.Errorf("outofservice: negative interval %s", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DriverName == "" {
		cfg.DriverName = params.DriverName
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, reported: map[string]string{}}, nil
}

// Run makes a pass at once and then every Interval, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	klog.InfoS("Out-of-service reconciler started: a node NotReady this long whose server is stopped gets the out-of-service taint",
		"after", r.cfg.After, "interval", r.cfg.Interval, "taint", TaintKey+"="+TaintValue+":NoExecute")
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Out-of-service pass failed; retrying next pass")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Sync makes one pass over every Node. A failure on one node is logged and
// leaves that node for the next pass; only a failed list is returned.
func (r *Reconciler) Sync(ctx context.Context) error {
	nodes, err := r.cfg.Kube.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	seen := make(map[string]bool, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		seen[n.Name] = true
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.syncNode(ctx, n)
	}
	for name := range r.reported {
		if !seen[name] {
			delete(r.reported, name)
		}
	}
	return nil
}

func (r *Reconciler) syncNode(ctx context.Context, n *corev1.Node) {
	ready, since := readiness(n)
	if server, ours := n.Annotations[Annotation]; ours {
		r.maybeRelease(ctx, n, ready, server)
		return
	}
	if ready == corev1.ConditionTrue || ready == "" {
		delete(r.reported, n.Name) // healthy, or too new to say
		return
	}
	if t, ok := outOfServiceTaint(n); ok {
		r.report(n.Name, "Node is out of service by someone else's taint: left alone", "taint", t.ToString())
		return
	}
	down := r.cfg.Now().Sub(since)
	if since.IsZero() || down < r.cfg.After {
		r.report(n.Name, "Node is not ready; waiting for the grace time before looking at its server",
			"ready", ready, "notReadySince", since, "after", r.cfg.After)
		return
	}
	server, err := r.serverOf(ctx, n.Name)
	switch {
	case err != nil:
		r.report(n.Name, "Not tainting: cannot read the node's CSINode", "err", err)
		return
	case server == "":
		r.report(n.Name, "Not tainting: the node's CSINode has no server UUID for this driver", "driver", r.cfg.DriverName)
		return
	}
	srv, err := r.cfg.Cloud.GetServer(ctx, server)
	switch {
	case cloudsigma.IsNotFound(err):
		r.report(n.Name, "Not tainting: CloudSigma does not know the node's server, so it cannot be seen stopped", "server", server, "err", err)
		return
	case err != nil:
		r.report(n.Name, "Not tainting: cannot read the node's server status", "server", server, "err", err)
		return
	case srv.Status != cloudsigma.StatusStopped:
		r.report(n.Name, "Not tainting: the node is not ready but its server is not stopped, so its guest may still write to its volumes",
			"server", server, "status", srv.Status, "notReadySince", since)
		return
	}
	taints := append(append([]corev1.Taint(nil), n.Spec.Taints...), corev1.Taint{
		Key: TaintKey, Value: TaintValue, Effect: corev1.TaintEffectNoExecute,
		TimeAdded: &metav1.Time{Time: r.cfg.Now()},
	})
	if !r.patch(ctx, n, taints, &server) {
		return
	}
	delete(r.reported, n.Name)
	klog.InfoS("Node marked out of service: its pods will be deleted and their volumes detached",
		"node", n.Name, "server", server, "status", srv.Status, "ready", ready,
		"notReadyFor", down.Round(time.Second), "after", r.cfg.After, "taint", TaintKey+"="+TaintValue+":NoExecute")
}

// maybeRelease removes the taint this driver added once the node is Ready
// and its server runs. Until then the node keeps it, even when an operator
// already removed the taint: the annotation then stops this driver from
// adding it again during the same outage.
func (r *Reconciler) maybeRelease(ctx context.Context, n *corev1.Node, ready corev1.ConditionStatus, tainted string) {
	if ready != corev1.ConditionTrue {
		return
	}
	server, err := r.serverOf(ctx, n.Name)
	if err != nil {
		r.report(n.Name, "Keeping the out-of-service taint: cannot read the node's CSINode", "err", err)
		return
	}
	if server == "" {
		server = tainted // the CSINode entry is gone: the server that was stopped
	}
	if server == "" {
		r.report(n.Name, "Keeping the out-of-service taint: no server UUID in the node's CSINode nor in the annotation", "annotation", Annotation)
		return
	}
	srv, err := r.cfg.Cloud.GetServer(ctx, server)
	switch {
	case err != nil:
		r.report(n.Name, "Keeping the out-of-service taint: cannot read the node's server status", "server", server, "err", err)
		return
	case srv.Status != cloudsigma.StatusRunning:
		r.report(n.Name, "Keeping the out-of-service taint: the node is ready but its server is not running", "server", server, "status", srv.Status)
		return
	}
	var kept []corev1.Taint
	removed := false
	for _, t := range n.Spec.Taints {
		if isOurs(t) {
			removed = true
			continue
		}
		kept = append(kept, t)
	}
	if !r.patch(ctx, n, kept, nil) {
		return
	}
	delete(r.reported, n.Name)
	klog.InfoS("Node back in service: removed the out-of-service taint this driver added",
		"node", n.Name, "server", server, "status", srv.Status, "taintWasPresent", removed)
}

// serverOf is the CloudSigma server UUID the node registered for this
// driver in its CSINode, "" when there is no such CSINode or entry.
func (r *Reconciler) serverOf(ctx context.Context, node string) (string, error) {
	csiNode, err := r.cfg.Kube.GetCSINode(ctx, node)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, d := range csiNode.Spec.Drivers {
		if d.Name == r.cfg.DriverName {
			return d.NodeID, nil
		}
	}
	return "", nil
}

// report logs why a node was left as it is: at level 0 when the reason
// changed since the last pass, at level 4 when it is the same again. Error
// values do not count as a change (they carry request IDs).
func (r *Reconciler) report(node, msg string, kv ...any) {
	key := msg
	for _, v := range kv {
		if _, isErr := v.(error); !isErr {
			key += "|" + fmt.Sprint(v)
		}
	}
	kv = append([]any{"node", node}, kv...)
	if r.reported[node] == key {
		klog.V(4).InfoSDepth(1, msg, kv...)
		return
	}
	r.reported[node] = key
	klog.InfoSDepth(1, msg, kv...)
}
