//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloudsigma-csi/driver/internal/fscheck"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/outofservice"
)

// failoverLimit is the most the move may take, from the out-of-service
// taint to the volume's data readable on the other node.
const failoverLimit = 60 * time.Second

// failover is non-graceful node shutdown end to end: a volume in use on
// node b, whose CloudSigma server then stops (node plugin and kubelet gone,
// the Node NotReady); the controller's out-of-service reconciler taints the
// Node; the volume is force-detached from the stopped server and attached,
// mounted and read on node a; when server b runs again and its Node is
// Ready, the taint goes.
func (e *env) failover() {
	b, a := e.other, e.home
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	var (
		pv      *corev1.PersistentVolume
		onB     *mounted
		onA     *mounted
		tainted time.Time
	)
	const step = 3 * time.Minute
	e.run("node b Ready; PVC f on it: attached, mounted, file written", step, func(ctx context.Context) (string, error) {
		if _, err := e.register(ctx, b, true); err != nil {
			return "", err
		}
		if _, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newPVC("pvc-f", "1Gi", nil, b), metav1.CreateOptions{}); err != nil {
			return "", err
		}
		var err error
		if pv, err = e.waitBound(ctx, "pvc-f"); err != nil {
			return "", err
		}
		va, err := e.attach(ctx, b, pv)
		if err != nil {
			return "", err
		}
		if onB, err = e.stageAndPublish(ctx, b, pv, va, "pod-f-b"); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s on server %s, sha256 %s", describe(pv), b.server, sum(payload)),
			fscheck.WriteSynced(filepath.Join(onB.target, "data.bin"), payload)
	})
	e.run("server b stops: node plugin, kubelet, mounts gone; NotReady", step, func(ctx context.Context) (string, error) {
		// What a powered-off guest leaves: no processes, no mounts (on this
		// machine the test takes them down for it), the drive still in the
		// stopped server's definition.
		e.procs.kill(b.plugin)
		for _, p := range []string{onB.target, onB.staging} {
			if out, err := exec.Command("umount", p).CombinedOutput(); err != nil {
				return "", fmt.Errorf("umount %s: %v: %s", p, err, out)
			}
		}
		if err := e.serverAction(ctx, b.server, "stop"); err != nil {
			return "", err
		}
		if err := e.eventually(ctx, "server b stopped", func(ctx context.Context) error {
			s, err := e.cloud.GetServer(ctx, b.server)
			if err == nil && s.Status != cloudsigma.StatusStopped {
				err = fmt.Errorf("status %s", s.Status)
			}
			return err
		}); err != nil {
			return "", err
		}
		// The node lifecycle controller's verdict once kubelet stops posting.
		return "", e.setReady(ctx, b, corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.")
	})
	e.run("the controller taints node b out-of-service", step, func(ctx context.Context) (string, error) {
		start := time.Now()
		var taint corev1.Taint
		err := e.eventually(ctx, "out-of-service taint on node b", func(ctx context.Context) error {
			n, err := e.kube.CoreV1().Nodes().Get(ctx, b.name, getOpts)
			if err != nil {
				return err
			}
			for _, t := range n.Spec.Taints {
				if t.Key == corev1.TaintNodeOutOfService {
					taint = t
				}
			}
			switch {
			case taint.Key == "":
				return fmt.Errorf("taints %v", n.Spec.Taints)
			case taint.Value != outofservice.TaintValue || taint.Effect != corev1.TaintEffectNoExecute:
				return fmt.Errorf("taint %s, want %s=%s:NoExecute", taint.ToString(), taint.Key, outofservice.TaintValue)
			case n.Annotations[outofservice.Annotation] != b.server:
				return fmt.Errorf("annotation %s=%q, want server %s", outofservice.Annotation, n.Annotations[outofservice.Annotation], b.server)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		tainted = time.Now()
		if taint.TimeAdded != nil {
			tainted = taint.TimeAdded.Time
		}
		return fmt.Sprintf("%s after %s NotReady", taint.ToString(), time.Since(start).Round(time.Millisecond)), nil
	})
	e.run("volume f moves to node a: force-detached, attached, same bytes", step, func(ctx context.Context) (string, error) {
		// The attach/detach controller's part once the taint is there: the
		// stopped node's VolumeAttachment goes without waiting for an
		// unmount that cannot come, then the claim's new node gets one.
		if err := e.detach(ctx, onB.va, pv.Spec.CSI.VolumeHandle); err != nil {
			return "", err
		}
		va, err := e.attach(ctx, a, pv)
		if err != nil {
			return "", err
		}
		if onA, err = e.stageAndPublish(ctx, a, pv, va, "pod-f-a"); err != nil {
			return "", err
		}
		got, err := os.ReadFile(filepath.Join(onA.target, "data.bin"))
		if err != nil {
			return "", err
		}
		if !bytes.Equal(got, payload) {
			return "", fmt.Errorf("data.bin on node a: sha256 %s, node b wrote %s", sum(got), sum(payload))
		}
		took := time.Since(tainted)
		detail := fmt.Sprintf("failover: taint -> data readable on node a in %s (limit %s)", took.Round(time.Millisecond), failoverLimit)
		fmt.Println("   ", detail)
		if took > failoverLimit {
			return detail, fmt.Errorf("took %s, over %s", took.Round(time.Millisecond), failoverLimit)
		}
		return detail, nil
	})
	e.run("server b runs, node b Ready -> taint removed; clean up f", step, func(ctx context.Context) (string, error) {
		if err := e.serverAction(ctx, b.server, "start"); err != nil {
			return "", err
		}
		if err := e.setReady(ctx, b, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"); err != nil {
			return "", err
		}
		if err := e.eventually(ctx, "taint removed from node b", func(ctx context.Context) error {
			n, err := e.kube.CoreV1().Nodes().Get(ctx, b.name, getOpts)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeOutOfService }) {
				return fmt.Errorf("taints %v", n.Spec.Taints)
			}
			if _, ok := n.Annotations[outofservice.Annotation]; ok {
				return fmt.Errorf("annotation %s still there", outofservice.Annotation)
			}
			return nil
		}); err != nil {
			return "", err
		}
		if err := e.unpublishAndUnstage(ctx, onA); err != nil {
			return "", err
		}
		if err := e.detach(ctx, onA.va, pv.Spec.CSI.VolumeHandle); err != nil {
			return "", err
		}
		left, err := e.deleteAll(ctx, []string{"pvc-f"}, nil)
		return "taint and annotation gone; " + left, err
	})
}

// serverAction starts or stops a server through the simulator's API, as
// the operator or CloudSigma itself would (the driver never does).
func (e *env) serverAction(ctx context.Context, server, action string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.apiURL+"servers/"+server+"/action/?do="+action, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.SetBasicAuth(simUser, simPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s server %s: HTTP %s", action, server, resp.Status)
	}
	return nil
}
