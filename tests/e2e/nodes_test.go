//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// kubeNode is one Kubernetes node of the e2e: a simulated CloudSigma server
// whose guest's drives are loop devices with by-id links in devDir, the
// node plugin serving it, and kubelet's directories, which the test fills
// as kubelet would.
type kubeNode struct {
	name     string // the Node
	server   string // its CloudSigma server: the node plugin's --node-id
	devDir   string // the server's guest device links (the simulator's)
	kubelet  string // kubelet's root directory
	sock     string
	plugin   *proc
	csi      csi.NodeClient
	topology map[string]string // from NodeGetInfo
}

func (e *env) newNode(name, server string) (*kubeNode, error) {
	n := &kubeNode{name: name, server: server, devDir: filepath.Join(e.work, name, "by-id"),
		kubelet: filepath.Join(e.work, name, "kubelet"), sock: filepath.Join(e.work, name, "csi.sock")}
	return n, os.MkdirAll(n.devDir, 0o755)
}

// startPlugin runs the node plugin for the node's server and connects to it.
func (e *env) startPlugin(ctx context.Context, n *kubeNode, apiURL string, creds []string) error {
	var err error
	n.plugin, err = e.procs.start("driver-node-"+n.name, *driverBin, creds, "--endpoint", "unix://"+n.sock,
		"--mode", "node", "--node-id", n.server, "--by-id-dir", n.devDir,
		"--api-url", apiURL, "--allow-insecure-http", "--cluster-id", "e2e", "-v", "4")
	if err != nil {
		return err
	}
	if err := e.eventually(ctx, "node plugin socket "+n.sock, func(context.Context) error { _, err := os.Stat(n.sock); return err }); err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	n.csi = csi.NewNodeClient(conn)
	return nil
}

// register creates the Node and its CSINode from NodeGetInfo, as kubelet
// and node-driver-registrar do: the topology labels the provisioner reads.
// With ready, the Node also reports Ready as a running kubelet does.
func (e *env) register(ctx context.Context, n *kubeNode, ready bool) (string, error) {
	info, err := n.csi.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		return "", err
	}
	if info.GetNodeId() != n.server {
		return "", fmt.Errorf("NodeGetInfo node_id %q, want the server UUID %s", info.GetNodeId(), n.server)
	}
	n.topology = info.GetAccessibleTopology().GetSegments()
	if n.topology[params.TopologyKey] == "" {
		return "", fmt.Errorf("NodeGetInfo topology %v lacks %s", n.topology, params.TopologyKey)
	}
	nodeIDs, _ := json.Marshal(map[string]string{params.DriverName: info.GetNodeId()})
	labels := map[string]string{"kubernetes.io/hostname": n.name}
	var keys []string
	for k, v := range n.topology {
		labels[k] = v
		keys = append(keys, k)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels,
		Annotations: map[string]string{"csi.volume.kubernetes.io/nodeid": string(nodeIDs)}}}
	if _, err = e.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if ready {
		if err := e.setReady(ctx, n, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"); err != nil {
			return "", err
		}
	}
	csiNode := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: params.DriverName,
			NodeID: info.GetNodeId(), TopologyKeys: keys}}}}
	if max := info.GetMaxVolumesPerNode(); max > 0 {
		csiNode.Spec.Drivers[0].Allocatable = &storagev1.VolumeNodeResources{Count: ptrInt32(int32(max))}
	}
	if _, err := e.kube.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	return fmt.Sprintf("node %s = server %s, topology %v", n.name, info.GetNodeId(), n.topology), nil
}

// setReady writes the Node's Ready condition, as kubelet does while it
// runs, and as the node lifecycle controller does (Unknown) once kubelet
// has stopped posting its status. A strategic merge patch of the status
// merges conditions by type, so it neither loses nor conflicts with what
// the controllers write meanwhile.
func (e *env) setReady(ctx context.Context, n *kubeNode, status corev1.ConditionStatus, reason, message string) error {
	now := metav1.NewTime(time.Now())
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: status, LastHeartbeatTime: now, LastTransitionTime: now,
		Reason: reason, Message: message}}}})
	if err != nil {
		return err
	}
	_, err = e.kube.CoreV1().Nodes().Patch(ctx, n.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// nodeNamed finds the e2e's node by its Node name.
func (e *env) nodeNamed(name string) (*kubeNode, error) {
	for _, n := range []*kubeNode{e.home, e.other} {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %q in this e2e", name)
}

func ptrInt32(v int32) *int32 { return &v }

// kubelet's own layout under its root directory.
func (n *kubeNode) stagingPath(handle string) string {
	return filepath.Join(n.kubelet, "plugins", "kubernetes.io", "csi", params.DriverName,
		fmt.Sprintf("%x", sha256.Sum256([]byte(handle))), "globalmount")
}

func (n *kubeNode) targetPath(pod, pv string) string {
	return filepath.Join(n.kubelet, "pods", pod, "volumes", "kubernetes.io~csi", pv, "mount")
}

// For raw block volumes kubelet stages into a directory per PV and
// publishes onto a file per pod, named by the pod's UID, in the PV's
// publish directory.
func (n *kubeNode) blockStagingPath(pv string) string {
	return filepath.Join(n.kubelet, "plugins", "kubernetes.io", "csi", "volumeDevices", "staging", pv)
}

func (n *kubeNode) blockPublishPath(pv, podUID string) string {
	return filepath.Join(n.kubelet, "plugins", "kubernetes.io", "csi", "volumeDevices", "publish", pv, podUID)
}
