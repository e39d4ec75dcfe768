//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// The test stands in for kubelet and node-driver-registrar: what they would
// write to the API server, and the CSI node calls they would make, built
// from the API objects alone.

// mounted is a volume as kubelet holds it on the node: staged once at the
// global mount, published into one pod's directory.
type mounted struct {
	node    *kubeNode
	pv      *corev1.PersistentVolume
	va      *storagev1.VolumeAttachment
	staging string
	target  string
}

func isBlockPV(pv *corev1.PersistentVolume) bool {
	return pv.Spec.VolumeMode != nil && *pv.Spec.VolumeMode == corev1.PersistentVolumeBlock
}

// capability is what kubelet derives from the PV: raw block for volumeMode
// Block, else a mount with its fsType; the access mode from the PV's first
// one (SINGLE_NODE_MULTI_WRITER for ReadWriteOnce, MULTI_NODE_MULTI_WRITER for
// ReadWriteMany).
func capability(pv *corev1.PersistentVolume) *csi.VolumeCapability {
	// kubelet asks for SINGLE_NODE_MULTI_WRITER for ReadWriteOnce when the
	// node plugin advertises that capability, as ours does.
	mode := csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
	if len(pv.Spec.AccessModes) > 0 {
		switch pv.Spec.AccessModes[0] {
		case corev1.ReadWriteMany:
			mode = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
		case corev1.ReadOnlyMany:
			mode = csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
		case corev1.ReadWriteOncePod:
			mode = csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
		}
	}
	vc := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode}}
	if isBlockPV(pv) {
		vc.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		vc.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: pv.Spec.CSI.FSType}}
	}
	return vc
}

// stageAndPublish makes the calls kubelet makes once the VolumeAttachment is
// attached: NodeStageVolume with its attachment metadata as the publish
// context, then NodePublishVolume into the pod's directory (pod is the
// pod's UID). kubelet creates the staging directory and the target's parent;
// the driver creates the target (a directory, or a file for raw block).
// A filesystem is mounted at both paths; a raw block volume only at the
// target, the device node bind-mounted there, nothing at the staging path.
func (e *env) stageAndPublish(ctx context.Context, n *kubeNode, pv *corev1.PersistentVolume, va *storagev1.VolumeAttachment, pod string) (*mounted, error) {
	if va.Spec.NodeName != n.name {
		return nil, fmt.Errorf("VolumeAttachment %s is for node %s, not %s", va.Name, va.Spec.NodeName, n.name)
	}
	m := &mounted{node: n, pv: pv, va: va, staging: n.stagingPath(pv.Spec.CSI.VolumeHandle), target: n.targetPath(pod, pv.Name)}
	block := isBlockPV(pv)
	if block {
		m.staging, m.target = n.blockStagingPath(pv.Name), n.blockPublishPath(pv.Name, pod)
	}
	src := pv.Spec.CSI
	if err := os.MkdirAll(m.staging, 0o750); err != nil {
		return nil, err
	}
	if _, err := n.csi.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: src.VolumeHandle,
		PublishContext: va.Status.AttachmentMetadata, StagingTargetPath: m.staging,
		VolumeCapability: capability(pv), VolumeContext: src.VolumeAttributes}); err != nil {
		return nil, fmt.Errorf("NodeStageVolume: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(m.target), 0o750); err != nil {
		return nil, err
	}
	if _, err := n.csi.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: src.VolumeHandle,
		PublishContext: va.Status.AttachmentMetadata, StagingTargetPath: m.staging, TargetPath: m.target,
		VolumeCapability: capability(pv), VolumeContext: src.VolumeAttributes}); err != nil {
		return nil, fmt.Errorf("NodePublishVolume: %w", err)
	}
	if !isMountPoint(m.target) {
		return nil, fmt.Errorf("%s is not a mount point after stage and publish", m.target)
	}
	switch staged := isMountPoint(m.staging); {
	case block && staged:
		return nil, fmt.Errorf("%s is a mount point: a raw block volume is neither formatted nor mounted", m.staging)
	case !block && !staged:
		return nil, fmt.Errorf("%s is not a mount point after stage and publish", m.staging)
	}
	return m, nil
}

// blockDevice checks a published raw block volume against the simulator:
// the target is a block device node with the device number of the loop
// device the drive's guest device link names, and that loop device is over
// a file in the simulator's data directory. It returns the loop device and
// its file.
func (e *env) blockDevice(m *mounted) (dev, file string, err error) {
	got, err := device.Number(m.target)
	if err != nil {
		return "", "", err
	}
	if dev, err = filepath.EvalSymlinks(linkPath(m.node.devDir, m.pv.Spec.CSI.VolumeHandle)); err != nil {
		return "", "", fmt.Errorf("guest device link: %w", err)
	}
	want, err := device.Number(dev)
	if err != nil {
		return "", "", err
	}
	if got != want {
		return "", "", fmt.Errorf("%s is device %s, the drive's guest device %s is %s", m.target, devNum(got), dev, devNum(want))
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		return "", "", fmt.Errorf("%s is not a loop device: %w", dev, err)
	}
	file = strings.TrimSpace(string(b))
	if !strings.HasPrefix(file, e.dataDir+"/") {
		return "", "", fmt.Errorf("%s is over %s, not a drive file of the simulator's (%s)", dev, file, e.dataDir)
	}
	return dev, file, nil
}

// devNum is a Linux device number as major:minor.
func devNum(r uint64) string {
	return fmt.Sprintf("%d:%d", r>>8&0xfff|r>>32&0xfffff000, r&0xff|r>>12&0xffffff00)
}

// writeThroughBlock is a pod's raw I/O on a published block volume: the
// device is the PV's size and blank (nothing formatted it), and a pattern
// written and synced through the target reads back from the target and from
// the drive's file in the simulator.
func writeThroughBlock(m *mounted, file string, pattern []byte, off int64) error {
	f, err := os.OpenFile(m.target, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	want := m.pv.Spec.Capacity[corev1.ResourceStorage]
	if size, err := f.Seek(0, io.SeekEnd); err != nil || size < want.Value() {
		return fmt.Errorf("block device at %s is %d bytes (%v), PV is %s", m.target, size, err, want.String())
	}
	head := make([]byte, 64<<10)
	if _, err := f.ReadAt(head, 0); err != nil {
		return err
	}
	if !bytes.Equal(head, make([]byte, len(head))) {
		return fmt.Errorf("the first %d KiB of %s are not blank: something formatted the raw block volume", len(head)>>10, m.target)
	}
	if _, err := f.WriteAt(pattern, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	for _, path := range []string{m.target, file} {
		got := make([]byte, len(pattern))
		r, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = r.ReadAt(got, off)
		r.Close()
		if err != nil {
			return fmt.Errorf("reading back %s: %w", path, err)
		}
		if !bytes.Equal(got, pattern) {
			return fmt.Errorf("%s at %d: sha256 %s, wrote %s", path, off, sum(got), sum(pattern))
		}
	}
	return nil
}

// unpublishAndUnstage is kubelet's tear-down before the VolumeAttachment
// may go: the pod's mount, then the global one.
func (e *env) unpublishAndUnstage(ctx context.Context, m *mounted) error {
	id := m.pv.Spec.CSI.VolumeHandle
	if _, err := m.node.csi.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: m.target}); err != nil {
		return fmt.Errorf("NodeUnpublishVolume: %w", err)
	}
	if _, err := m.node.csi.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: m.staging}); err != nil {
		return fmt.Errorf("NodeUnstageVolume: %w", err)
	}
	for _, p := range []string{m.staging, m.target} {
		if isMountPoint(p) {
			return fmt.Errorf("%s is still a mount point", p)
		}
	}
	// What the driver created at the target, it removes.
	if _, err := os.Lstat(m.target); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is still there after NodeUnpublishVolume (%v)", m.target, err)
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

// rdevOf is the device number of a device node (0 if it cannot be read).
func rdevOf(path string) uint64 {
	n, _ := device.Number(path)
	return n
}
