//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloudsigma-csi/driver/pkg/params"
)

// The test stands in for kubelet and node-driver-registrar: what they would
// write to the API server, and the CSI node calls they would make, built
// from the API objects alone.

// registerNode creates the Node and its CSINode from NodeGetInfo, as kubelet
// and node-driver-registrar do: the topology labels the provisioner reads.
func (e *env) registerNode(ctx context.Context) (string, error) {
	info, err := e.node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		return "", err
	}
	if info.GetNodeId() != serverUUID {
		return "", fmt.Errorf("NodeGetInfo node_id %q, want the server UUID %s", info.GetNodeId(), serverUUID)
	}
	e.topology = info.GetAccessibleTopology().GetSegments()
	if e.topology[params.TopologyKey] == "" {
		return "", fmt.Errorf("NodeGetInfo topology %v lacks %s", e.topology, params.TopologyKey)
	}
	nodeIDs, _ := json.Marshal(map[string]string{params.DriverName: info.GetNodeId()})
	labels := map[string]string{"kubernetes.io/hostname": nodeName}
	var keys []string
	for k, v := range e.topology {
		labels[k] = v
		keys = append(keys, k)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: labels,
		Annotations: map[string]string{"csi.volume.kubernetes.io/nodeid": string(nodeIDs)}}}
	if _, err := e.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	csiNode := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: params.DriverName,
			NodeID: info.GetNodeId(), TopologyKeys: keys}}}}
	if n := info.GetMaxVolumesPerNode(); n > 0 {
		csiNode.Spec.Drivers[0].Allocatable = &storagev1.VolumeNodeResources{Count: ptrInt32(int32(n))}
	}
	if _, err := e.kube.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	return fmt.Sprintf("node %s = server %s, topology %v", nodeName, info.GetNodeId(), e.topology), nil
}

func ptrInt32(v int32) *int32 { return &v }

// mounted is a volume as kubelet holds it on the node: staged once at the
// global mount, published into one pod's directory.
type mounted struct {
	pv      *corev1.PersistentVolume
	va      *storagev1.VolumeAttachment
	staging string
	target  string
}

// kubelet's own layout under its root directory.
func (e *env) stagingPath(handle string) string {
	return filepath.Join(e.work, "kubelet", "plugins", "kubernetes.io", "csi", params.DriverName,
		fmt.Sprintf("%x", sha256.Sum256([]byte(handle))), "globalmount")
}

func (e *env) targetPath(pod, pv string) string {
	return filepath.Join(e.work, "kubelet", "pods", pod, "volumes", "kubernetes.io~csi", pv, "mount")
}

// capability is what kubelet derives from the PV: its fsType, and
// SINGLE_NODE_WRITER for ReadWriteOnce.
func capability(pv *corev1.PersistentVolume) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: pv.Spec.CSI.FSType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// stageAndPublish makes the calls kubelet makes once the VolumeAttachment is
// attached: NodeStageVolume with its attachment metadata as the publish
// context, then NodePublishVolume into the pod's directory.
func (e *env) stageAndPublish(ctx context.Context, pv *corev1.PersistentVolume, va *storagev1.VolumeAttachment, pod string) (*mounted, error) {
	m := &mounted{pv: pv, va: va, staging: e.stagingPath(pv.Spec.CSI.VolumeHandle), target: e.targetPath(pod, pv.Name)}
	src := pv.Spec.CSI
	if err := os.MkdirAll(m.staging, 0o750); err != nil {
		return nil, err
	}
	if _, err := e.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: src.VolumeHandle,
		PublishContext: va.Status.AttachmentMetadata, StagingTargetPath: m.staging,
		VolumeCapability: capability(pv), VolumeContext: src.VolumeAttributes}); err != nil {
		return nil, fmt.Errorf("NodeStageVolume: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(m.target), 0o750); err != nil {
		return nil, err
	}
	if _, err := e.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: src.VolumeHandle,
		PublishContext: va.Status.AttachmentMetadata, StagingTargetPath: m.staging, TargetPath: m.target,
		VolumeCapability: capability(pv), VolumeContext: src.VolumeAttributes}); err != nil {
		return nil, fmt.Errorf("NodePublishVolume: %w", err)
	}
	for _, p := range []string{m.staging, m.target} {
		if !isMountPoint(p) {
			return nil, fmt.Errorf("%s is not a mount point after stage and publish", p)
		}
	}
	return m, nil
}

// unpublishAndUnstage is kubelet's tear-down before the VolumeAttachment
// may go: the pod's mount, then the global one.
func (e *env) unpublishAndUnstage(ctx context.Context, m *mounted) error {
	id := m.pv.Spec.CSI.VolumeHandle
	if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: m.target}); err != nil {
		return fmt.Errorf("NodeUnpublishVolume: %w", err)
	}
	if _, err := e.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: m.staging}); err != nil {
		return fmt.Errorf("NodeUnstageVolume: %w", err)
	}
	for _, p := range []string{m.staging, m.target} {
		if isMountPoint(p) {
			return fmt.Errorf("%s is still a mount point", p)
		}
	}
	return nil
}

// isMountPoint reads /proc/self/mountinfo: a real mount, not the driver's
// word for it.
func isMountPoint(path string) bool {
	for _, m := range mountPoints() {
		if m == path {
			return true
		}
	}
	return false
}
