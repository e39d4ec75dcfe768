package outofservice_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/outofservice"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

const (
	nodeName = "worker-1"
	serverID = "6c2c3f1e-8a4b-4f0e-9d51-1f2a3b4c5d6e"
	after    = 5 * time.Minute
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var _ outofservice.Kube = clientsetKube{}

// cloud is a fake CloudSigma API: a status per server, or an error.
type cloud struct {
	mu     sync.Mutex
	status map[string]string
	err    error
	calls  int
}

func (c *cloud) GetServer(_ context.Context, uuid string) (*cloudsigma.Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return nil, c.err
	}
	s, ok := c.status[uuid]
	if !ok {
		return nil, &cloudsigma.Error{StatusCode: http.StatusNotFound, Type: cloudsigma.ErrTypeNotExist, Message: "no such server"}
	}
	return &cloudsigma.Server{UUID: uuid, Status: s}, nil
}

func (c *cloud) set(uuid, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status[uuid] = status
}

// clientsetKube is outofservice.Kube over a clientset (here the fake one).
type clientsetKube struct{ c kubernetes.Interface }

func (k clientsetKube) ListNodes(ctx context.Context) ([]corev1.Node, error) {
	l, err := k.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (k clientsetKube) GetCSINode(ctx context.Context, name string) (*storagev1.CSINode, error) {
	return k.c.StorageV1().CSINodes().Get(ctx, name, metav1.GetOptions{})
}

func (k clientsetKube) PatchNode(ctx context.Context, name string, patch []byte) error {
	_, err := k.c.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: outofservice.FieldManager})
	return err
}

// env is a reconciler over a fake clientset with one node, and a clock.
type env struct {
	kube  *fake.Clientset
	cloud *cloud
	now   time.Time
	r     *outofservice.Reconciler
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{kube: fake.NewClientset(objs...), cloud: &cloud{status: map[string]string{}}, now: t0}
	r, err := outofservice.New(outofservice.Config{
		Kube: clientsetKube{e.kube}, Cloud: e.cloud, After: after, Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	return e
}

func node(ready corev1.ConditionStatus, since time.Time, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName, ResourceVersion: "41"},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready, LastTransitionTime: metav1.NewTime(since)},
		}},
	}
}

func csiNode(drivers ...storagev1.CSINodeDriver) *storagev1.CSINode {
	return &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: nodeName}, Spec: storagev1.CSINodeSpec{Drivers: drivers}}
}

func ourDriver(id string) storagev1.CSINodeDriver {
	return storagev1.CSINodeDriver{Name: params.DriverName, NodeID: id}
}

func (e *env) sync(t *testing.T) {
	t.Helper()
	if err := e.r.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func (e *env) node(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := e.kube.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setReady rewrites the node's Ready condition, as the kubelet or the node
// lifecycle controller would.
func (e *env) setReady(t *testing.T, ready corev1.ConditionStatus) {
	t.Helper()
	n := e.node(t)
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = ready
			n.Status.Conditions[i].LastTransitionTime = metav1.NewTime(e.now)
		}
	}
	if _, err := e.kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// patches are the Node patches the reconciler sent.
func (e *env) patches() []k8stesting.PatchAction {
	var out []k8stesting.PatchAction
	for _, a := range e.kube.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "nodes" {
			out = append(out, p)
		}
	}
	return out
}

func ours(t corev1.Taint) bool {
	return t.Key == outofservice.TaintKey && t.Value == outofservice.TaintValue && t.Effect == corev1.TaintEffectNoExecute
}

func requireTainted(t *testing.T, n *corev1.Node, server string) {
	t.Helper()
	if c := slices.IndexFunc(n.Spec.Taints, ours); c < 0 || slices.ContainsFunc(n.Spec.Taints[c+1:], ours) {
		t.Fatalf("want exactly one out-of-service taint, node has %v", n.Spec.Taints)
	}
	if got, ok := n.Annotations[outofservice.Annotation]; !ok || got != server {
		t.Fatalf("annotation %s = %q (present %v), want %q", outofservice.Annotation, got, ok, server)
	}
}

func requireUntouched(t *testing.T, e *env, why string) {
	t.Helper()
	if p := e.patches(); len(p) != 0 {
		t.Fatalf("%s: the node was patched: %s", why, p[0].GetPatch())
	}
	n := e.node(t)
	if slices.ContainsFunc(n.Spec.Taints, ours) || n.Annotations[outofservice.Annotation] != "" {
		t.Fatalf("%s: node tainted: %v %v", why, n.Spec.Taints, n.Annotations)
	}
}

// A node NotReady (False or Unknown) for the grace time whose server is
// stopped is tainted, the annotation naming the server; other taints stay.
func TestTaintsNotReadyNodeOfStoppedServer(t *testing.T) {
	other := corev1.Taint{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoSchedule}
	for _, ready := range []corev1.ConditionStatus{corev1.ConditionUnknown, corev1.ConditionFalse} {
		t.Run(string(ready), func(t *testing.T) {
			e := newEnv(t, node(ready, t0.Add(-after), other), csiNode(storagev1.CSINodeDriver{Name: "other.csi.io", NodeID: "x"}, ourDriver(serverID)))
			e.cloud.set(serverID, cloudsigma.StatusStopped)
			e.sync(t)
			n := e.node(t)
			requireTainted(t, n, serverID)
			if !slices.Contains(n.Spec.Taints, other) {
				t.Errorf("the node lost its other taint: %v", n.Spec.Taints)
			}
			i := slices.IndexFunc(n.Spec.Taints, ours)
			if ta := n.Spec.Taints[i].TimeAdded; ta == nil || !ta.Time.Equal(t0) {
				t.Errorf("taint timeAdded %v, want %v", ta, t0)
			}
		})
	}
}

// The patch is conditional on the resourceVersion the decision was made
// on, and touches only the taints and the annotation.
func TestPatchIsConditional(t *testing.T) {
	e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour)), csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	e.sync(t)
	p := e.patches()
	if len(p) != 1 {
		t.Fatalf("%d patches, want 1", len(p))
	}
	var body map[string]map[string]json.RawMessage
	if err := json.Unmarshal(p[0].GetPatch(), &body); err != nil {
		t.Fatal(err)
	}
	if rv := string(body["metadata"]["resourceVersion"]); rv != `"41"` {
		t.Errorf("patch resourceVersion %s, want \"41\": %s", rv, p[0].GetPatch())
	}
	if len(body) != 2 || len(body["metadata"]) != 2 || len(body["spec"]) != 1 {
		t.Errorf("patch touches more than the taints and the annotation: %s", p[0].GetPatch())
	}
}

// A node changed meanwhile (409): nothing is forced, the next pass taints.
func TestConflictLeavesTheNodeForTheNextPass(t *testing.T) {
	e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour)), csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	conflicts := 1
	e.kube.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, nodeName, errors.New("the object has been modified"))
	})
	e.sync(t)
	if n := e.node(t); slices.ContainsFunc(n.Spec.Taints, ours) {
		t.Fatalf("tainted despite the conflict: %v", n.Spec.Taints)
	}
	e.sync(t)
	requireTainted(t, e.node(t), serverID)
}

// Not before the grace time; at it, yes.
func TestNoTaintBeforeTheGraceTime(t *testing.T) {
	e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-after+time.Second)), csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	e.sync(t)
	requireUntouched(t, e, "NotReady for less than the grace time")
	if e.cloud.calls != 0 {
		t.Errorf("the server was looked up %d times before the grace time", e.cloud.calls)
	}
	e.now = e.now.Add(time.Second)
	e.sync(t)
	requireTainted(t, e.node(t), serverID)
}

// Only a stopped server proves the guest no longer writes: running, paused,
// any other status, a deleted server and an API error all leave the node.
func TestNoTaintUnlessTheServerIsStopped(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		err          error
	}{
		{"running", cloudsigma.StatusRunning, nil},
		{"paused", "paused", nil},
		{"starting", "starting", nil},
		{"stopping", "stopping", nil},
		{"unavailable", "unavailable", nil},
		{"empty status", "", nil},
		{"unknown to CloudSigma", "", nil},
		{"API error", "", &cloudsigma.Error{StatusCode: http.StatusInternalServerError, Message: "boom"}},
		{"unreachable", "", errors.New("dial tcp: connection refused")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour)), csiNode(ourDriver(serverID)))
			if tc.name != "unknown to CloudSigma" {
				e.cloud.set(serverID, tc.status)
			}
			e.cloud.err = tc.err
			e.sync(t)
			e.sync(t)
			requireUntouched(t, e, tc.name)
			if e.cloud.calls != 2 {
				t.Errorf("server looked up %d times in two passes, want 2", e.cloud.calls)
			}
		})
	}
}

// Without our driver's CSINode entry there is no server to ask about.
func TestNoTaintWithoutOurCSINode(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []runtime.Object
	}{
		{"no CSINode", nil},
		{"another driver only", []runtime.Object{csiNode(storagev1.CSINodeDriver{Name: "other.csi.io", NodeID: serverID})}},
		{"empty node ID", []runtime.Object{csiNode(ourDriver(""))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append(tc.objs, node(corev1.ConditionUnknown, t0.Add(-time.Hour)))...)
			e.cloud.set(serverID, cloudsigma.StatusStopped)
			e.sync(t)
			requireUntouched(t, e, tc.name)
			if e.cloud.calls != 0 {
				t.Errorf("CloudSigma asked %d times about a node without our CSINode entry", e.cloud.calls)
			}
		})
	}
}

// A Ready node, or one without a Ready condition yet, is never tainted
// and costs no CloudSigma call, whatever its server says.
func TestNoTaintForReadyOrNewNodes(t *testing.T) {
	fresh := node(corev1.ConditionTrue, t0)
	fresh.Status.Conditions = fresh.Status.Conditions[:1]
	for name, n := range map[string]*corev1.Node{"ready": node(corev1.ConditionTrue, t0.Add(-time.Hour)), "no Ready condition": fresh} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, n, csiNode(ourDriver(serverID)))
			e.cloud.set(serverID, cloudsigma.StatusStopped)
			e.sync(t)
			requireUntouched(t, e, name)
			if e.cloud.calls != 0 {
				t.Errorf("CloudSigma asked %d times about a healthy node", e.cloud.calls)
			}
		})
	}
}

// Tainting is idempotent: later passes change nothing.
func TestTaintIsIdempotent(t *testing.T) {
	e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour)), csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	for range 3 {
		e.sync(t)
		e.now = e.now.Add(time.Minute)
	}
	requireTainted(t, e.node(t), serverID)
	if p := e.patches(); len(p) != 1 {
		t.Errorf("%d patches in three passes, want 1", len(p))
	}
}

// The taint goes when the node is Ready AND its server runs, not before;
// other taints stay. Untainting is idempotent too.
func TestUntaintWhenReadyAndRunning(t *testing.T) {
	keep := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour), keep), csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	e.sync(t)
	requireTainted(t, e.node(t), serverID)

	e.cloud.set(serverID, cloudsigma.StatusRunning) // booting: not Ready yet
	e.sync(t)
	requireTainted(t, e.node(t), serverID)

	e.setReady(t, corev1.ConditionTrue)
	e.cloud.set(serverID, "paused") // Ready as last reported, but the server is not running
	e.sync(t)
	requireTainted(t, e.node(t), serverID)
	e.cloud.err = errors.New("API down")
	e.sync(t)
	requireTainted(t, e.node(t), serverID)

	e.cloud.err = nil
	e.cloud.set(serverID, cloudsigma.StatusRunning)
	e.sync(t)
	n := e.node(t)
	if slices.ContainsFunc(n.Spec.Taints, ours) || !slices.Equal(n.Spec.Taints, []corev1.Taint{keep}) {
		t.Fatalf("taints after recovery %v, want only %v", n.Spec.Taints, keep)
	}
	if _, ok := n.Annotations[outofservice.Annotation]; ok {
		t.Fatalf("annotation left after recovery: %v", n.Annotations)
	}
	before := len(e.patches())
	e.sync(t)
	if len(e.patches()) != before {
		t.Errorf("a pass after recovery patched the node again")
	}
}

// The server recorded in the annotation is asked about when the CSINode
// entry is gone.
func TestUntaintFallsBackToTheAnnotatedServer(t *testing.T) {
	n := node(corev1.ConditionTrue, t0, corev1.Taint{Key: outofservice.TaintKey, Value: outofservice.TaintValue, Effect: corev1.TaintEffectNoExecute})
	n.Annotations = map[string]string{outofservice.Annotation: serverID}
	e := newEnv(t, n)
	e.cloud.set(serverID, cloudsigma.StatusRunning)
	e.sync(t)
	if n := e.node(t); len(n.Spec.Taints) != 0 || len(n.Annotations) != 0 {
		t.Fatalf("not untainted: %v %v", n.Spec.Taints, n.Annotations)
	}
}

// An operator's out-of-service taint (no annotation) is never removed, and
// the driver does not claim it.
func TestOperatorTaintIsLeftAlone(t *testing.T) {
	for _, taint := range []corev1.Taint{
		{Key: outofservice.TaintKey, Value: outofservice.TaintValue, Effect: corev1.TaintEffectNoExecute},
		{Key: outofservice.TaintKey, Value: "manual", Effect: corev1.TaintEffectNoSchedule},
	} {
		t.Run(taint.ToString(), func(t *testing.T) {
			e := newEnv(t, node(corev1.ConditionUnknown, t0.Add(-time.Hour), taint), csiNode(ourDriver(serverID)))
			e.cloud.set(serverID, cloudsigma.StatusStopped)
			e.sync(t)
			e.setReady(t, corev1.ConditionTrue)
			e.cloud.set(serverID, cloudsigma.StatusRunning)
			e.sync(t)
			if p := e.patches(); len(p) != 0 {
				t.Fatalf("the operator's taint was patched: %s", p[0].GetPatch())
			}
			if n := e.node(t); !slices.Equal(n.Spec.Taints, []corev1.Taint{taint}) || n.Annotations[outofservice.Annotation] != "" {
				t.Fatalf("node changed: %v %v", n.Spec.Taints, n.Annotations)
			}
		})
	}
}

// Our taint removed by an operator during the outage is not put back; the
// annotation is cleared once the node recovers.
func TestOperatorRemovalOfOurTaintIsRespected(t *testing.T) {
	n := node(corev1.ConditionUnknown, t0.Add(-time.Hour))
	n.Annotations = map[string]string{outofservice.Annotation: serverID}
	e := newEnv(t, n, csiNode(ourDriver(serverID)))
	e.cloud.set(serverID, cloudsigma.StatusStopped)
	e.sync(t)
	if p := e.patches(); len(p) != 0 {
		t.Fatalf("the taint was put back: %s", p[0].GetPatch())
	}
	e.setReady(t, corev1.ConditionTrue)
	e.cloud.set(serverID, cloudsigma.StatusRunning)
	e.sync(t)
	if n := e.node(t); len(n.Spec.Taints) != 0 || len(n.Annotations) != 0 {
		t.Fatalf("after recovery: %v %v", n.Spec.Taints, n.Annotations)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	kube, c := clientsetKube{fake.NewClientset()}, &cloud{}
	for name, cfg := range map[string]outofservice.Config{
		"no kube":           {Cloud: c},
		"no cloud":          {Kube: kube},
		"negative after":    {Kube: kube, Cloud: c, After: -time.Second},
		"negative interval": {Kube: kube, Cloud: c, Interval: -time.Second},
	} {
		if _, err := outofservice.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// Run makes a pass at once and returns when its context ends.
func TestRunUntilCancelled(t *testing.T) {
	kube := fake.NewClientset(node(corev1.ConditionUnknown, time.Now().Add(-time.Hour)), csiNode(ourDriver(serverID)))
	c := &cloud{status: map[string]string{serverID: cloudsigma.StatusStopped}}
	r, err := outofservice.New(outofservice.Config{Kube: clientsetKube{kube}, Cloud: c, After: after, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && slices.ContainsFunc(n.Spec.Taints, ours) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not taint the node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
