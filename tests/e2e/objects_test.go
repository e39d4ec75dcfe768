//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
)

const storageClass = "cloudsigma-dssd" // deploy/kubernetes/storageclass.yaml

var (
	getOpts = metav1.GetOptions{}
	listAll = metav1.ListOptions{}

	snapshotGVR = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	contentGVR  = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
)

// createPVC makes a ReadWriteOnce filesystem claim on our StorageClass.
func (e *env) createPVC(ctx context.Context, name, size string, source *corev1.TypedLocalObjectReference) error {
	_, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newPVC(name, size, source, e.home), metav1.CreateOptions{})
	return err
}

// createSharedPVC makes a ReadWriteMany claim of the given volume mode on
// our StorageClass.
func (e *env) createSharedPVC(ctx context.Context, name, size string, mode corev1.PersistentVolumeMode) error {
	pvc := newPVC(name, size, nil, e.home)
	pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
	pvc.Spec.VolumeMode = &mode
	_, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{})
	return err
}

// newPVC is a ReadWriteOnce claim on our StorageClass (volume mode left to
// the API server's default, Filesystem). The class binds on first consumer,
// so the claim carries the node the scheduler would have picked: n.
func newPVC(name, size string, source *corev1.TypedLocalObjectReference, n *kubeNode) *corev1.PersistentVolumeClaim {
	sc := storageClass
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Annotations: map[string]string{"volume.kubernetes.io/selected-node": n.name}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &sc,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			DataSource:       source,
		},
	}
}

// waitBound waits until the claim is Bound and returns its PV, checked for
// what the provisioner must have put there: our driver, a drive that exists
// in the cloud, and the node's location as the PV's topology.
func (e *env) waitBound(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	var pv *corev1.PersistentVolume
	err := e.eventually(ctx, "PVC "+name+" bound", func(ctx context.Context) error {
		pvc, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, getOpts)
		if err != nil {
			return err
		}
		if pvc.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("phase %q", pvc.Status.Phase)
		}
		pv, err = e.kube.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, getOpts)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != params.DriverName {
		return nil, fmt.Errorf("PV %s is not a %s volume: %+v", pv.Name, params.DriverName, pv.Spec.PersistentVolumeSource)
	}
	if err := e.checkTopology(pv); err != nil {
		return nil, err
	}
	d, err := e.cloud.GetDrive(ctx, pv.Spec.CSI.VolumeHandle)
	if err != nil {
		return nil, fmt.Errorf("PV %s: its drive: %w", pv.Name, err)
	}
	want := pv.Spec.Capacity[corev1.ResourceStorage]
	if int64(d.Size) < want.Value() {
		return nil, fmt.Errorf("drive %s is %d bytes, PV says %s", d.UUID, d.Size, want.String())
	}
	return pv, nil
}

// checkTopology: the PV may only be used in the node's location.
func (e *env) checkTopology(pv *corev1.PersistentVolume) error {
	want := e.home.topology[params.TopologyKey]
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return fmt.Errorf("PV %s has no node affinity", pv.Name)
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, r := range term.MatchExpressions {
			if r.Key == params.TopologyKey && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 && r.Values[0] == want {
				return nil
			}
		}
	}
	return fmt.Errorf("PV %s node affinity %+v, want %s in [%s]", pv.Name, pv.Spec.NodeAffinity.Required, params.TopologyKey, want)
}

// attach creates the VolumeAttachment the attach/detach controller would
// for node n, named as it names them, and waits for the attacher to report
// it attached.
func (e *env) attach(ctx context.Context, n *kubeNode, pv *corev1.PersistentVolume) (*storagev1.VolumeAttachment, error) {
	name := fmt.Sprintf("csi-%x", sha256.Sum256([]byte(pv.Spec.CSI.VolumeHandle+params.DriverName+n.name)))
	pvName := pv.Name
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: params.DriverName, NodeName: n.name,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pvName}}}
	if _, err := e.kube.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	err := e.eventually(ctx, "VolumeAttachment "+name+" attached", func(ctx context.Context) error {
		var err error
		if va, err = e.kube.StorageV1().VolumeAttachments().Get(ctx, name, getOpts); err != nil {
			return err
		}
		if !va.Status.Attached {
			return fmt.Errorf("not attached (error: %v)", va.Status.AttachError)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if got := va.Status.AttachmentMetadata[params.PublishDriveUUID]; got != pv.Spec.CSI.VolumeHandle {
		return nil, fmt.Errorf("attachment metadata %v: drive %q, want %s", va.Status.AttachmentMetadata, got, pv.Spec.CSI.VolumeHandle)
	}
	return va, e.checkOnServer(ctx, n, pv.Spec.CSI.VolumeHandle, true)
}

// detach deletes the VolumeAttachment and waits for the attacher to detach
// the drive and drop its finalizer.
func (e *env) detach(ctx context.Context, va *storagev1.VolumeAttachment, handle string) error {
	n, err := e.nodeNamed(va.Spec.NodeName)
	if err != nil {
		return err
	}
	if err := e.kube.StorageV1().VolumeAttachments().Delete(ctx, va.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := e.waitGone(ctx, "VolumeAttachment "+va.Name, func(ctx context.Context) error {
		_, err := e.kube.StorageV1().VolumeAttachments().Get(ctx, va.Name, getOpts)
		return err
	}); err != nil {
		return err
	}
	return e.checkOnServer(ctx, n, handle, false)
}

// checkOnServer asserts the simulator's view: the drive is (or is not) in
// the drives of n's server, and its guest device link is there (or not).
func (e *env) checkOnServer(ctx context.Context, n *kubeNode, handle string, want bool) error {
	return e.eventually(ctx, "drive "+handle+" on server "+n.server, func(ctx context.Context) error {
		s, err := e.cloud.GetServer(ctx, n.server)
		if err != nil {
			return err
		}
		on := false
		for _, d := range s.Drives {
			on = on || d.Drive.UUID == handle
		}
		_, linkErr := statLink(n.devDir, handle)
		if on != want || (linkErr == nil) != want {
			return fmt.Errorf("in the server's drives: %v, guest device link: %v; want %v", on, linkErr == nil, want)
		}
		return nil
	})
}

// waitGone polls get until it answers NotFound.
func (e *env) waitGone(ctx context.Context, what string, get func(ctx context.Context) error) error {
	return e.eventually(ctx, what+" gone", func(ctx context.Context) error {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			return fmt.Errorf("still there")
		}
		return err
	})
}

// createSnapshot makes a VolumeSnapshot of a claim in our class and waits
// for ReadyToUse; it returns the snapshot handle from its content.
func (e *env) createSnapshot(ctx context.Context, name, pvc string) (string, error) {
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"volumeSnapshotClassName": "cloudsigma-snapshots",
			"source": map[string]any{"persistentVolumeClaimName": pvc}},
	}}
	if _, err := e.dyn.Resource(snapshotGVR).Namespace(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	var content string
	err := e.eventually(ctx, "VolumeSnapshot "+name+" ready", func(ctx context.Context) error {
		got, err := e.dyn.Resource(snapshotGVR).Namespace(ns).Get(ctx, name, getOpts)
		if err != nil {
			return err
		}
		ready, _, _ := unstructured.NestedBool(got.Object, "status", "readyToUse")
		content, _, _ = unstructured.NestedString(got.Object, "status", "boundVolumeSnapshotContentName")
		if !ready {
			e, _, _ := unstructured.NestedMap(got.Object, "status", "error")
			return fmt.Errorf("not ready (error: %v)", e)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	vsc, err := e.dyn.Resource(contentGVR).Get(ctx, content, getOpts)
	if err != nil {
		return "", err
	}
	handle, _, _ := unstructured.NestedString(vsc.Object, "status", "snapshotHandle")
	return handle, nil
}

// waitRefused waits for the provisioner's ProvisioningFailed event on a
// claim whose CreateVolume the driver refused with code (InvalidArgument),
// then checks that nothing was provisioned: the claim is Pending with no
// volume, no PV claims it and the cloud holds no drive for it. It returns
// the driver's reason as the event carries it.
func (e *env) waitRefused(ctx context.Context, name, code string) (string, error) {
	pvc, err := e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, getOpts)
	if err != nil {
		return "", err
	}
	var msg string
	err = e.eventually(ctx, "ProvisioningFailed event on PVC "+name, func(ctx context.Context) error {
		l, err := e.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=" + name})
		if err != nil {
			return err
		}
		var seen []string
		for _, ev := range l.Items {
			if ev.InvolvedObject.UID == pvc.UID && ev.Reason == "ProvisioningFailed" && strings.Contains(ev.Message, "code = "+code) {
				msg = ev.Message
				return nil
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return fmt.Errorf("events %q", seen)
	})
	if err != nil {
		return "", err
	}
	if pvc, err = e.kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, getOpts); err != nil {
		return "", err
	}
	if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" {
		return "", fmt.Errorf("PVC %s refused, yet phase %q, volume %q", name, pvc.Status.Phase, pvc.Spec.VolumeName)
	}
	pvs, err := e.kube.CoreV1().PersistentVolumes().List(ctx, listAll)
	if err != nil {
		return "", err
	}
	for _, pv := range pvs.Items {
		if r := pv.Spec.ClaimRef; r != nil && r.Namespace == ns && r.Name == name {
			return "", fmt.Errorf("PVC %s refused, yet PV %s claims it", name, pv.Name)
		}
	}
	// The provisioner names volumes pvc-<claim UID>; the driver names the
	// drive after the volume.
	drives, err := e.cloud.ListDrives(ctx, cloudsigma.Filter{})
	if err != nil {
		return "", err
	}
	for _, d := range drives {
		if strings.Contains(d.Name, string(pvc.UID)) {
			return "", fmt.Errorf("PVC %s refused, yet drive %s (%s) was made for it", name, d.UUID, d.Name)
		}
	}
	if i := strings.Index(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	return msg, nil
}
