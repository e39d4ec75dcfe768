//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/cloudsigma-csi/driver/internal/fscheck"
)

// lifeCycle is the driver's whole job through the API server: provision,
// attach, mount, snapshot, restore, clone, expand, delete.
func (e *env) lifeCycle() {
	payload := make([]byte, 4<<20)
	_, _ = rand.Read(payload)
	var (
		pvA, pvB, pvC *corev1.PersistentVolume
		mA, mB, mC    *mounted
		snapHandle    string
	)
	const step = 3 * time.Minute
	e.run("PVC a (1Gi) -> PV provisioned, bound, topology", step, func(ctx context.Context) (string, error) {
		if err := e.createPVC(ctx, "pvc-a", "1Gi", nil); err != nil {
			return "", err
		}
		var err error
		pvA, err = e.waitBound(ctx, "pvc-a")
		return describe(pvA), err
	})
	e.run("VolumeAttachment a -> attached, drive on the server", step, func(ctx context.Context) (string, error) {
		va, err := e.attach(ctx, e.home, pvA)
		if err != nil {
			return "", err
		}
		mA = &mounted{pv: pvA, va: va}
		return fmt.Sprintf("metadata %v", va.Status.AttachmentMetadata), nil
	})
	e.run("NodeStage + NodePublish a (mkfs, mount), write a file", step, func(ctx context.Context) (string, error) {
		var err error
		if mA, err = e.stageAndPublish(ctx, e.home, pvA, mA.va, "pod-a"); err != nil {
			return "", err
		}
		return "sha256 " + sum(payload), fscheck.WriteSynced(filepath.Join(mA.target, "data.bin"), payload)
	})
	e.run("VolumeSnapshot of pvc-a -> ReadyToUse, snapshot in the cloud", step, func(ctx context.Context) (string, error) {
		var err error
		if snapHandle, err = e.createSnapshot(ctx, "snap-a", "pvc-a"); err != nil {
			return "", err
		}
		s, err := e.cloud.GetSnapshot(ctx, snapHandle)
		if err != nil {
			return "", fmt.Errorf("snapshot %s in the cloud: %w", snapHandle, err)
		}
		if s.Drive.UUID != pvA.Spec.CSI.VolumeHandle {
			return "", fmt.Errorf("snapshot %s is of drive %s, want %s", s.UUID, s.Drive.UUID, pvA.Spec.CSI.VolumeHandle)
		}
		return "snapshot " + snapHandle + " " + s.Status, nil
	})
	e.run("PVC b from the snapshot (2Gi) -> bound, mounted, same bytes", step, func(ctx context.Context) (string, error) {
		src := &corev1.TypedLocalObjectReference{APIGroup: strPtr("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "snap-a"}
		var err error
		if pvB, mB, err = e.provisionAndRead(ctx, "pvc-b", "2Gi", src, "pod-b", payload); err != nil {
			return "", err
		}
		return describe(pvB) + ", file matches", nil
	})
	e.run("PVC c cloned from pvc-a -> bound, mounted, same bytes", step, func(ctx context.Context) (string, error) {
		src := &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "pvc-a"}
		var err error
		if pvC, mC, err = e.provisionAndRead(ctx, "pvc-c", "1Gi", src, "pod-c", payload); err != nil {
			return "", err
		}
		return describe(pvC) + ", file matches", nil
	})
	e.run("unmount and detach a (VolumeAttachment deleted)", step, func(ctx context.Context) (string, error) {
		if err := e.unpublishAndUnstage(ctx, mA); err != nil {
			return "", err
		}
		return "", e.detach(ctx, mA.va, pvA.Spec.CSI.VolumeHandle)
	})
	e.run("expand pvc-a to 2Gi while detached -> PV and drive grow", step, func(ctx context.Context) (string, error) {
		return e.expandOffline(ctx, pvA, "2Gi")
	})
	e.run("attach, stage, NodeExpandVolume a -> filesystem grew", step, func(ctx context.Context) (string, error) {
		va, err := e.attach(ctx, e.home, pvA)
		if err != nil {
			return "", err
		}
		if pvA, err = e.kube.CoreV1().PersistentVolumes().Get(ctx, pvA.Name, getOpts); err != nil {
			return "", err
		}
		if mA, err = e.stageAndPublish(ctx, e.home, pvA, va, "pod-a2"); err != nil {
			return "", err
		}
		return e.nodeExpand(ctx, mA, "pvc-a", payload)
	})
	e.run("unmount and detach a, b, c", step, func(ctx context.Context) (string, error) {
		for _, m := range []*mounted{mA, mB, mC} {
			if err := e.unpublishAndUnstage(ctx, m); err != nil {
				return "", err
			}
			if err := e.detach(ctx, m.va, m.pv.Spec.CSI.VolumeHandle); err != nil {
				return "", err
			}
		}
		return "", nil
	})
	e.sharedBlock()
	e.run("delete PVCs, VolumeSnapshot -> nothing left anywhere", step, func(ctx context.Context) (string, error) {
		return e.deleteAll(ctx, []string{"pvc-a", "pvc-b", "pvc-c", "pvc-shared"}, []string{"snap-a"})
	})
}

// sharedBlock is a ReadWriteMany raw block volume (a drive with CloudSigma's
// allow_multimount) through attach, stage, publish and raw I/O, and the
// refusal of a ReadWriteMany filesystem. pvc-shared stays for deleteAll.
func (e *env) sharedBlock() {
	var (
		pvS *corev1.PersistentVolume
		mS  *mounted
	)
	const step = 3 * time.Minute
	e.run("PVC shared (1Gi, Block, RWX) -> bound, multimount drive", step, func(ctx context.Context) (string, error) {
		if err := e.createSharedPVC(ctx, "pvc-shared", "1Gi", corev1.PersistentVolumeBlock); err != nil {
			return "", err
		}
		var err error
		if pvS, err = e.waitBound(ctx, "pvc-shared"); err != nil {
			return "", err
		}
		if m := pvS.Spec.VolumeMode; m == nil || *m != corev1.PersistentVolumeBlock {
			return "", fmt.Errorf("PV %s volume mode %v, want Block", pvS.Name, m)
		}
		if am := pvS.Spec.AccessModes; !slices.Equal(am, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) {
			return "", fmt.Errorf("PV %s access modes %v, want [ReadWriteMany]", pvS.Name, am)
		}
		d, err := e.cloud.GetDrive(ctx, pvS.Spec.CSI.VolumeHandle)
		if err != nil {
			return "", err
		}
		if !d.AllowMultimount {
			return "", fmt.Errorf("drive %s of a ReadWriteMany block volume does not allow multimount", d.UUID)
		}
		return describe(pvS) + ", Block RWX, allow_multimount", nil
	})
	e.run("VolumeAttachment shared -> attached, drive on the server", step, func(ctx context.Context) (string, error) {
		va, err := e.attach(ctx, e.home, pvS)
		if err != nil {
			return "", err
		}
		mS = &mounted{pv: pvS, va: va}
		return fmt.Sprintf("metadata %v", va.Status.AttachmentMetadata), nil
	})
	e.run("NodeStage + NodePublish shared (raw block), write, read", step, func(ctx context.Context) (string, error) {
		vc := capability(pvS)
		if vc.GetBlock() == nil || vc.GetAccessMode().GetMode() != csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
			return "", fmt.Errorf("capability from PV %s: %v, want block MULTI_NODE_MULTI_WRITER", pvS.Name, vc)
		}
		var err error
		if mS, err = e.stageAndPublish(ctx, e.home, pvS, mS.va, string(uuid.NewUUID())); err != nil {
			return "", err
		}
		dev, file, err := e.blockDevice(mS)
		if err != nil {
			return "", err
		}
		pattern := make([]byte, 1<<20)
		_, _ = rand.Read(pattern)
		if err := writeThroughBlock(mS, file, pattern, 1<<20); err != nil {
			return "", err
		}
		return fmt.Sprintf("target is %s (%s); 1 MiB read back from it and the drive file", dev, devNum(rdevOf(dev))), nil
	})
	e.run("NodeUnpublish, NodeUnstage, detach shared", step, func(ctx context.Context) (string, error) {
		if err := e.unpublishAndUnstage(ctx, mS); err != nil {
			return "", err
		}
		return "", e.detach(ctx, mS.va, pvS.Spec.CSI.VolumeHandle)
	})
	e.run("PVC shared-fs (Filesystem, RWX) -> refused, stays Pending", step, func(ctx context.Context) (string, error) {
		if err := e.createSharedPVC(ctx, "pvc-shared-fs", "1Gi", corev1.PersistentVolumeFilesystem); err != nil {
			return "", err
		}
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		why, err := e.waitRefused(wait, "pvc-shared-fs", "InvalidArgument")
		if err != nil {
			return "", err
		}
		if err := e.kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "pvc-shared-fs", metav1.DeleteOptions{}); err != nil {
			return "", err
		}
		return "InvalidArgument: " + why, e.waitGone(ctx, "PVC pvc-shared-fs", func(ctx context.Context) error {
			_, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "pvc-shared-fs", getOpts)
			return err
		})
	})
}

// provisionAndRead provisions a claim from a data source, attaches, stages
// and publishes it, and checks the file written into pvc-a.
func (e *env) provisionAndRead(ctx context.Context, name, size string, src *corev1.TypedLocalObjectReference, pod string,
	payload []byte) (*corev1.PersistentVolume, *mounted, error) {
	if err := e.createPVC(ctx, name, size, src); err != nil {
		return nil, nil, err
	}
	pv, err := e.waitBound(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	va, err := e.attach(ctx, e.home, pv)
	if err != nil {
		return nil, nil, err
	}
	m, err := e.stageAndPublish(ctx, e.home, pv, va, pod)
	if err != nil {
		return nil, nil, err
	}
	got, err := os.ReadFile(filepath.Join(m.target, "data.bin"))
	if err != nil {
		return nil, m, err
	}
	if !bytes.Equal(got, payload) {
		return nil, m, fmt.Errorf("data.bin on %s: sha256 %s, want %s", name, sum(got), sum(payload))
	}
	// A restore into a bigger drive must carry a filesystem grown to fit.
	want := pv.Spec.Capacity[corev1.ResourceStorage]
	if size, err := fscheck.Size(m.target); err != nil || size < want.Value()*9/10 {
		return nil, m, fmt.Errorf("filesystem on %s is %d bytes (%v), PV is %s", name, size, err, want.String())
	}
	return pv, m, nil
}

// expandOffline raises the claim's request; the resizer expands the drive
// (CloudSigma only resizes a drive not in use) and the PV.
func (e *env) expandOffline(ctx context.Context, pv *corev1.PersistentVolume, size string) (string, error) {
	patch := fmt.Sprintf(`{"spec":{"resources":{"requests":{"storage":%q}}}}`, size)
	if _, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, pv.Spec.ClaimRef.Name, types.MergePatchType,
		[]byte(patch), metav1.PatchOptions{}); err != nil {
		return "", err
	}
	want := resource.MustParse(size)
	err := e.eventually(ctx, "PV "+pv.Name+" grown", func(ctx context.Context) error {
		got, err := e.kube.CoreV1().PersistentVolumes().Get(ctx, pv.Name, getOpts)
		if err != nil {
			return err
		}
		if c := got.Spec.Capacity[corev1.ResourceStorage]; c.Cmp(want) < 0 {
			return fmt.Errorf("capacity %s", c.String())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	d, err := e.cloud.GetDrive(ctx, pv.Spec.CSI.VolumeHandle)
	if err != nil {
		return "", err
	}
	if int64(d.Size) < want.Value() {
		return "", fmt.Errorf("drive %s is %d bytes after the expansion, want %d", d.UUID, d.Size, want.Value())
	}
	pvc, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, pv.Spec.ClaimRef.Name, getOpts)
	if err != nil {
		return "", err
	}
	var conds []string
	for _, c := range pvc.Status.Conditions {
		conds = append(conds, string(c.Type))
	}
	return fmt.Sprintf("drive %d MiB, PVC conditions %v", d.Size>>20, conds), nil
}

// nodeExpand finishes an expansion as kubelet does: NodeExpandVolume on the
// staged volume, then the claim's status capacity. The filesystem must fill
// the grown drive and still hold the file.
func (e *env) nodeExpand(ctx context.Context, m *mounted, pvc string, payload []byte) (string, error) {
	want := m.pv.Spec.Capacity[corev1.ResourceStorage]
	resp, err := m.node.csi.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: m.pv.Spec.CSI.VolumeHandle,
		VolumePath: m.target, StagingTargetPath: m.staging, VolumeCapability: capability(m.pv),
		CapacityRange: &csi.CapacityRange{RequiredBytes: want.Value()}})
	if err != nil {
		return "", fmt.Errorf("NodeExpandVolume: %w", err)
	}
	size, err := fscheck.Size(m.target)
	if err != nil {
		return "", err
	}
	if size < want.Value()*9/10 {
		return "", fmt.Errorf("filesystem is %d bytes, PV is %s", size, want.String())
	}
	got, err := os.ReadFile(filepath.Join(m.target, "data.bin"))
	if err != nil || !bytes.Equal(got, payload) {
		return "", fmt.Errorf("data.bin after the expansion: %v, sha256 %s", err, sum(got))
	}
	patch := fmt.Sprintf(`{"status":{"capacity":{"storage":%q},"conditions":null}}`, want.String())
	if _, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, pvc, types.MergePatchType, []byte(patch),
		metav1.PatchOptions{}, "status"); err != nil {
		return "", err
	}
	return fmt.Sprintf("filesystem %d MiB (NodeExpandVolume: %d MiB), file intact", size>>20, resp.GetCapacityBytes()>>20), nil
}

// deleteAll deletes the claims and snapshots and waits until the PVs, the
// snapshot contents and the cloud's drives and snapshots are gone.
func (e *env) deleteAll(ctx context.Context, pvcs, snaps []string) (string, error) {
	var pvs []string
	for _, name := range pvcs {
		pvc, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, getOpts)
		if err != nil {
			return "", err
		}
		pvs = append(pvs, pvc.Spec.VolumeName)
	}
	for _, name := range snaps {
		if err := e.dyn.Resource(snapshotGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return "", err
		}
	}
	for _, name := range pvcs {
		if err := e.kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return "", err
		}
	}
	for _, pv := range pvs {
		if err := e.waitGone(ctx, "PV "+pv, func(ctx context.Context) error {
			_, err := e.kube.CoreV1().PersistentVolumes().Get(ctx, pv, getOpts)
			return err
		}); err != nil {
			return "", err
		}
	}
	if err := e.eventually(ctx, "no VolumeSnapshotContents", func(ctx context.Context) error {
		l, err := e.dyn.Resource(contentGVR).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) > 0 {
			err = fmt.Errorf("%d left", len(l.Items))
		}
		return err
	}); err != nil {
		return "", err
	}
	if err := e.eventually(ctx, "cloud empty", e.cloudEmpty); err != nil {
		return "", err
	}
	// While the simulator still runs: it would free its loop devices on exit.
	if leaks := e.leaks(); len(leaks) > 0 {
		return "", fmt.Errorf("left on the machine: %s", strings.Join(leaks, ", "))
	}
	return fmt.Sprintf("%d PVs gone; no drive, snapshot, loop device, device link or mount left", len(pvs)), nil
}

func describe(pv *corev1.PersistentVolume) string {
	if pv == nil {
		return ""
	}
	c := pv.Spec.Capacity[corev1.ResourceStorage]
	return fmt.Sprintf("%s %s drive %s", pv.Name, c.String(), pv.Spec.CSI.VolumeHandle)
}

func strPtr(s string) *string { return &s }

func sum(b []byte) string { s := sha256.Sum256(b); return fmt.Sprintf("%x", s[:8]) }
