package packaging

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

const driverName = "csi.cloudsigma.com"

var versionTag = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

// The controller Deployment's containers: the driver plus the four sidecars
// that make the CSI controller calls ("the five"), and the livenessprobe.
var (
	controllerContainers = []string{"cloudsigma-csi-driver", "csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter", "liveness-probe"}
	nodeContainers       = []string{"cloudsigma-csi-driver", "node-driver-registrar", "liveness-probe"}
	// CloudSigma operations take seconds; these are the agreed sidecar timeouts.
	sidecarTimeouts = map[string]string{"csi-provisioner": "120s", "csi-attacher": "120s", "csi-resizer": "180s", "csi-snapshotter": "300s"}
)

// expect holds what differs between renderings; zero values take the defaults.
type expect struct {
	namespace     string
	kubeletDir    string
	contextDevice string
	storageClass  string // the default StorageClass
	snapshotClass string
	secret        string // credentials Secret the controller mounts
}

func (e expect) withDefaults() expect {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&e.namespace, "kube-system")
	def(&e.kubeletDir, "/var/lib/kubelet")
	def(&e.contextDevice, "/dev/ttyS1")
	def(&e.storageClass, "cloudsigma-dssd")
	def(&e.snapshotClass, "cloudsigma-snapshots")
	def(&e.secret, "cloudsigma-credentials")
	return e
}

// checkBundle asserts everything a working installation needs, on any
// rendering (chart or plain manifests).
func checkBundle(t *testing.T, b bundle, e expect) {
	t.Helper()
	e = e.withDefaults()
	checkCSIDriver(t, b)
	checkController(t, b, e)
	checkNode(t, b, e)
	checkRBAC(t, b, e)
	checkStorageClass(t, b, e)
	checkSnapshotClass(t, b, e)
	checkImagesPinned(t, b)
	for _, o := range b {
		switch {
		case clusterScoped[o.Kind] && o.Metadata.Namespace != "":
			t.Errorf("%s is cluster-scoped but names namespace %q", o, o.Metadata.Namespace)
		case !clusterScoped[o.Kind] && o.Metadata.Namespace != e.namespace:
			// Explicit, so the manifests apply the same with or without kustomize or -n.
			t.Errorf("%s is in namespace %q, want %q", o, o.Metadata.Namespace, e.namespace)
		}
	}
}

var clusterScoped = map[string]bool{
	"CSIDriver": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"StorageClass": true, "VolumeSnapshotClass": true,
}

func checkCSIDriver(t *testing.T, b bundle) {
	t.Helper()
	o := b.one(t, "CSIDriver")
	var d csiDriverSpec
	decode(t, o, &d)
	if o.Metadata.Name != driverName {
		t.Errorf("CSIDriver name %q, want %q", o.Metadata.Name, driverName)
	}
	s := d.Spec
	if s.AttachRequired == nil || !*s.AttachRequired {
		t.Error("CSIDriver: attachRequired must be true (ControllerPublish attaches the drive)")
	}
	if s.PodInfoOnMount == nil || *s.PodInfoOnMount {
		t.Error("CSIDriver: podInfoOnMount must be false")
	}
	if s.FSGroupPolicy != "File" {
		t.Errorf("CSIDriver: fsGroupPolicy %q, want File", s.FSGroupPolicy)
	}
	if !slices.Equal(s.VolumeLifecycleModes, []string{"Persistent"}) {
		t.Errorf("CSIDriver: volumeLifecycleModes %v, want [Persistent]", s.VolumeLifecycleModes)
	}
}

func containerNames(cs []container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func containerByName(t *testing.T, p podSpec, name string) container {
	t.Helper()
	for _, c := range p.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q among %v", name, containerNames(p.Containers))
	return container{}
}

func hasArg(c container, arg string) bool { return slices.Contains(c.Args, arg) }

func hasArgPrefix(c container, prefix string) bool {
	return slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

func requireArgs(t *testing.T, where string, c container, args ...string) {
	t.Helper()
	for _, a := range args {
		if !hasArg(c, a) {
			t.Errorf("%s: container %s lacks arg %s (has %v)", where, c.Name, a, c.Args)
		}
	}
}

func volumeByName(p podSpec, name string) (volume, bool) {
	for _, v := range p.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return volume{}, false
}

// mountSource maps a container's mount path to its volume.
func mountSource(t *testing.T, p podSpec, c container, path string) (volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			v, ok := volumeByName(p, m.Name)
			if !ok {
				t.Fatalf("container %s mounts undefined volume %q", c.Name, m.Name)
			}
			return v, m.MountPropagation
		}
	}
	t.Errorf("container %s mounts nothing at %s", c.Name, path)
	return volume{}, ""
}

func checkController(t *testing.T, b bundle, e expect) {
	t.Helper()
	o := b.one(t, "Deployment")
	var w workload
	decode(t, o, &w)
	p := w.Spec.Template.Spec
	where := o.String()
	if got := containerNames(p.Containers); !slices.Equal(got, controllerContainers) {
		t.Errorf("%s: containers %v, want %v", where, got, controllerContainers)
	}
	if len(p.InitContainers) != 0 {
		t.Errorf("%s: unexpected init containers", where)
	}
	if p.PriorityClassName != "system-cluster-critical" {
		t.Errorf("%s: priorityClassName %q", where, p.PriorityClassName)
	}
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the controller pod must run as non-root (runAsNonRoot and a non-zero runAsUser)", where)
	}
	for _, c := range p.Containers {
		s := c.SecurityContext
		if s == nil || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation || (s.Privileged != nil && *s.Privileged) {
			t.Errorf("%s: container %s must not be privileged nor allow privilege escalation", where, c.Name)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: container %s lacks memory request or limit", where, c.Name)
		}
	}
	if _, ok := b.find("ServiceAccount", p.ServiceAccountName); !ok {
		t.Errorf("%s: serviceAccountName %q is not defined", where, p.ServiceAccountName)
	}

	driver := containerByName(t, p, "cloudsigma-csi-driver")
	requireArgs(t, where, driver, "--endpoint=unix:///csi/csi.sock", "--mode=controller")
	if !hasArgPrefix(driver, "--location=") && !hasArgPrefix(driver, "--api-url=") {
		t.Errorf("%s: driver has neither --location nor --api-url", where)
	}
	var credDir string
	for _, a := range driver.Args {
		credDir, _ = strings.CutPrefix(a, "--credentials-dir=")
		if credDir != a {
			break
		}
		credDir = ""
	}
	if credDir == "" {
		t.Errorf("%s: driver lacks --credentials-dir", where)
	} else if v, _ := mountSource(t, p, driver, credDir); v.Secret == nil || v.Secret.SecretName != e.secret {
		t.Errorf("%s: %s must be the Secret %q, got %+v", where, credDir, e.secret, v)
	}
	if driver.LivenessProbe == nil || driver.LivenessProbe.HTTPGet == nil || driver.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: driver lacks the /healthz liveness probe", where)
	}
	for name, timeout := range sidecarTimeouts {
		c := containerByName(t, p, name)
		requireArgs(t, where, c, "--csi-address=/csi/csi.sock", "--leader-election", "--timeout="+timeout)
	}
	requireArgs(t, where, containerByName(t, p, "csi-provisioner"),
		"--feature-gates=Topology=true", "--extra-create-metadata", "--default-fstype=ext4")
	requireArgs(t, where, containerByName(t, p, "liveness-probe"), "--csi-address=/csi/csi.sock")
}

func checkNode(t *testing.T, b bundle, e expect) {
	t.Helper()
	o := b.one(t, "DaemonSet")
	var w workload
	decode(t, o, &w)
	p := w.Spec.Template.Spec
	where := o.String()
	if got := containerNames(p.Containers); !slices.Equal(got, nodeContainers) {
		t.Errorf("%s: containers %v, want %v", where, got, nodeContainers)
	}
	if p.PriorityClassName != "system-node-critical" {
		t.Errorf("%s: priorityClassName %q", where, p.PriorityClassName)
	}
	if !slices.ContainsFunc(p.Tolerations, func(tl struct {
		Key      string `json:"key"`
		Operator string `json:"operator"`
		Effect   string `json:"effect"`
	}) bool {
		return tl.Key == "" && tl.Operator == "Exists" && tl.Effect == ""
	}) {
		t.Errorf("%s: the node plugin must tolerate every taint (operator: Exists)", where)
	}
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		t.Errorf("%s: the node pod needs no API token (automountServiceAccountToken: false)", where)
	}
	if _, ok := b.find("ServiceAccount", p.ServiceAccountName); !ok {
		t.Errorf("%s: serviceAccountName %q is not defined", where, p.ServiceAccountName)
	}

	driver := containerByName(t, p, "cloudsigma-csi-driver")
	requireArgs(t, where, driver, "--endpoint=unix:///csi/csi.sock", "--mode=node",
		"--server-context-device="+e.contextDevice)
	if hasArgPrefix(driver, "--node-id") {
		t.Errorf("%s: --node-id must not be set: the node ID comes from the server context", where)
	}
	if hasArgPrefix(driver, "--credentials-dir") {
		t.Errorf("%s: the node plugin must not get the API credentials", where)
	}
	if s := driver.SecurityContext; s == nil || s.Privileged == nil || !*s.Privileged {
		t.Errorf("%s: the node driver must be privileged", where)
	}
	checkNodeMounts(t, where, p, driver, e)

	reg := containerByName(t, p, "node-driver-registrar")
	requireArgs(t, where, reg, "--csi-address=/csi/csi.sock",
		"--kubelet-registration-path="+e.kubeletDir+"/plugins/"+driverName+"/csi.sock")
	if v, _ := mountSource(t, p, reg, "/registration"); v.HostPath == nil || v.HostPath.Path != e.kubeletDir+"/plugins_registry" {
		t.Errorf("%s: /registration must be %s/plugins_registry", where, e.kubeletDir)
	}
	checkNodeSecurity(t, where, p)
}

// driverMount is one mount the node driver must have, exactly as given.
type driverMount struct {
	hostPath, propagation string
	readOnly              bool
}

// checkNodeMounts: the node driver mounts exactly these host paths. Of the
// kubelet's directory only the two trees it mounts in (publish targets under
// pods, staging and raw block under plugins/kubernetes.io/csi), both
// Bidirectional; udev's database read-only; /dev and /sys writable
// (mount points the runtime creates in /dev; udevadm trigger writes
// /sys/.../uevent); the server context reached through /dev, with no mount
// of its own.
func checkNodeMounts(t *testing.T, where string, p podSpec, driver container, e expect) {
	t.Helper()
	want := map[string]driverMount{ // mount path in the driver -> what it must be
		"/csi":                 {hostPath: e.kubeletDir + "/plugins/" + driverName},
		e.kubeletDir + "/pods": {hostPath: e.kubeletDir + "/pods", propagation: "Bidirectional"},
		e.kubeletDir + "/plugins/kubernetes.io/csi": {hostPath: e.kubeletDir + "/plugins/kubernetes.io/csi", propagation: "Bidirectional"},
		"/dev":      {hostPath: "/dev"},
		"/sys":      {hostPath: "/sys"},
		"/run/udev": {hostPath: "/run/udev", readOnly: true},
	}
	if !strings.HasPrefix(e.contextDevice, "/dev/") {
		t.Fatalf("the server context %s is not under /dev", e.contextDevice)
	}
	for _, m := range driver.VolumeMounts {
		w, ok := want[m.MountPath]
		if !ok {
			t.Errorf("%s: the node driver mounts %s (volume %s), which it does not need", where, m.MountPath, m.Name)
			continue
		}
		delete(want, m.MountPath)
		v, _ := volumeByName(p, m.Name)
		got := driverMount{propagation: m.MountPropagation, readOnly: m.ReadOnly}
		if v.HostPath != nil {
			got.hostPath = v.HostPath.Path
		}
		if got != w {
			t.Errorf("%s: node driver mount %s is %+v, want %+v", where, m.MountPath, got, w)
		}
	}
	for path := range want {
		t.Errorf("%s: the node driver does not mount %s", where, path)
	}
	// No volume of the pod exposes the kubelet's whole directory or the
	// server context device by itself.
	for _, v := range p.Volumes {
		if v.HostPath != nil && (v.HostPath.Path == e.kubeletDir || v.HostPath.Path == e.contextDevice) {
			t.Errorf("%s: volume %s is the host path %s", where, v.Name, v.HostPath.Path)
		}
	}
}

// checkNodeSecurity: a RuntimeDefault seccomp profile for the pod; every
// container but the driver unprivileged, with no capability, RuntimeDefault
// seccomp, a read-only root filesystem and no privilege escalation. They
// run as root (their images have no USER; the sockets they write are
// root's), so runAsNonRoot is not set; it must not be set false either.
func checkNodeSecurity(t *testing.T, where string, p podSpec) {
	t.Helper()
	if sc := p.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("%s: the node pod lacks seccompProfile RuntimeDefault", where)
	}
	for _, c := range p.Containers {
		if c.Name == "cloudsigma-csi-driver" {
			continue
		}
		s := c.SecurityContext
		if s == nil {
			t.Errorf("%s: container %s has no securityContext", where, c.Name)
			continue
		}
		if s.Privileged != nil && *s.Privileged {
			t.Errorf("%s: only the driver container may be privileged, not %s", where, c.Name)
		}
		if s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation {
			t.Errorf("%s: container %s must set allowPrivilegeEscalation: false", where, c.Name)
		}
		if s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem {
			t.Errorf("%s: container %s must have a read-only root filesystem", where, c.Name)
		}
		if s.Capabilities == nil || !slices.Equal(s.Capabilities.Drop, []string{"ALL"}) || len(s.Capabilities.Add) != 0 {
			t.Errorf("%s: container %s must drop ALL capabilities and add none, got %+v", where, c.Name, s.Capabilities)
		}
		if s.SeccompProfile == nil || s.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: container %s lacks seccompProfile RuntimeDefault", where, c.Name)
		}
		if s.RunAsNonRoot != nil && !*s.RunAsNonRoot {
			t.Errorf("%s: container %s sets runAsNonRoot: false", where, c.Name)
		}
	}
}

// grants reports whether any of roles allows verb on group/resource.
func grants(roles []rbacRole, group, resource, verb string) bool {
	for _, r := range roles {
		for _, rule := range r.Rules {
			if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
				return true
			}
		}
	}
	return false
}

func checkRBAC(t *testing.T, b bundle, e expect) {
	t.Helper()
	var dep, ds workload
	decode(t, b.one(t, "Deployment"), &dep)
	decode(t, b.one(t, "DaemonSet"), &ds)
	controllerSA, nodeSA := dep.Spec.Template.Spec.ServiceAccountName, ds.Spec.Template.Spec.ServiceAccountName
	if controllerSA == nodeSA {
		t.Errorf("controller and node must use separate ServiceAccounts, both use %q", controllerSA)
	}

	var clusterRoles, nsRoles []rbacRole // bound to the controller SA
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range b.ofKind(kind) {
			var rb rbacBinding
			decode(t, o, &rb)
			ro, ok := b.find(rb.RoleRef.Kind, rb.RoleRef.Name)
			if !ok {
				t.Errorf("%s: roleRef %s/%s is not defined", o, rb.RoleRef.Kind, rb.RoleRef.Name)
				continue
			}
			var role rbacRole
			decode(t, ro, &role)
			for _, s := range rb.Subjects {
				if s.Kind != "ServiceAccount" {
					t.Errorf("%s: subject %s/%s, want ServiceAccounts only", o, s.Kind, s.Name)
					continue
				}
				if _, ok := b.find("ServiceAccount", s.Name); !ok || s.Namespace != e.namespace {
					t.Errorf("%s: subject %s/%s is not a ServiceAccount of this bundle", o, s.Namespace, s.Name)
				}
				if s.Name == nodeSA {
					t.Errorf("%s: the node ServiceAccount must have no rights", o)
				}
				if s.Name == controllerSA && kind == "ClusterRoleBinding" {
					clusterRoles = append(clusterRoles, role)
				}
				if s.Name == controllerSA && kind == "RoleBinding" {
					if o.Metadata.Namespace != e.namespace {
						t.Errorf("%s: leader-election binding outside %s", o, e.namespace)
					}
					nsRoles = append(nsRoles, role)
				}
			}
		}
	}
	// One right per sidecar that only that sidecar's rules grant.
	for _, need := range []struct{ sidecar, group, resource, verb string }{
		{"provisioner", "", "persistentvolumes", "create"},
		{"provisioner", "storage.k8s.io", "csinodes", "get"},
		{"attacher", "storage.k8s.io", "volumeattachments/status", "patch"},
		{"resizer", "", "persistentvolumeclaims/status", "patch"},
		{"snapshotter", "snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update"},
	} {
		if !grants(clusterRoles, need.group, need.resource, need.verb) {
			t.Errorf("controller ServiceAccount cannot %s %s: the %s would fail", need.verb, need.resource, need.sidecar)
		}
	}
	// The snapshot-controller creates and deletes VolumeSnapshotContents; the
	// csi-snapshotter sidecar only updates them (upstream dropped create and
	// delete from its rules in 2022).
	for _, verb := range []string{"create", "delete"} {
		if grants(clusterRoles, "snapshot.storage.k8s.io", "volumesnapshotcontents", verb) {
			t.Errorf("controller ServiceAccount may %s volumesnapshotcontents: that is the snapshot-controller's job", verb)
		}
	}
	for _, verb := range []string{"get", "create", "update"} {
		if !grants(nsRoles, "coordination.k8s.io", "leases", verb) {
			t.Errorf("controller ServiceAccount cannot %s leases in %s: leader election would fail", verb, e.namespace)
		}
	}
	// Least privilege: no wildcards, no secrets, no cluster-wide leases.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range b.ofKind(kind) {
			var r rbacRole
			decode(t, o, &r)
			for _, rule := range r.Rules {
				if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
					t.Errorf("%s: wildcard rule %+v", o, rule)
				}
				if slices.Contains(rule.Resources, "secrets") {
					t.Errorf("%s: grants secrets; the credentials are mounted, not read through the API", o)
				}
				if kind == "ClusterRole" && slices.Contains(rule.Resources, "leases") {
					t.Errorf("%s: leases belong in a namespaced Role", o)
				}
			}
		}
	}
}

func checkStorageClass(t *testing.T, b bundle, e expect) {
	t.Helper()
	o, ok := b.find("StorageClass", e.storageClass)
	if !ok {
		t.Fatalf("no StorageClass %q", e.storageClass)
	}
	var sc storageClass
	decode(t, o, &sc)
	if sc.Provisioner != driverName || sc.VolumeBindingMode != "WaitForFirstConsumer" || sc.ReclaimPolicy != "Delete" ||
		sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		t.Errorf("%s: want provisioner %s, WaitForFirstConsumer, Delete, allowVolumeExpansion; got %+v", o, driverName, sc)
	}
	if sc.Parameters["storageType"] != "dssd" || sc.Parameters["csi.storage.k8s.io/fstype"] != "ext4" {
		t.Errorf("%s: parameters %v, want storageType dssd and fstype ext4", o, sc.Parameters)
	}
	if o.Metadata.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Errorf("%s is not the default StorageClass", o)
	}
	defaults := 0
	for _, s := range b.ofKind("StorageClass") {
		if s.Metadata.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			defaults++
		}
	}
	if defaults != 1 {
		t.Errorf("%d default StorageClasses, want 1", defaults)
	}
}

func checkSnapshotClass(t *testing.T, b bundle, e expect) {
	t.Helper()
	o, ok := b.find("VolumeSnapshotClass", e.snapshotClass)
	if !ok {
		t.Fatalf("no VolumeSnapshotClass %q", e.snapshotClass)
	}
	var vsc snapshotClass
	decode(t, o, &vsc)
	if vsc.Driver != driverName || vsc.DeletionPolicy != "Delete" {
		t.Errorf("%s: want driver %s and deletionPolicy Delete, got %+v", o, driverName, vsc)
	}
}

// images lists every container image of every workload, by container name.
func images(t *testing.T, b bundle) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kind := range []string{"Deployment", "DaemonSet", "StatefulSet", "Job"} {
		for _, o := range b.ofKind(kind) {
			var w workload
			decode(t, o, &w)
			for _, c := range append(w.Spec.Template.Spec.InitContainers, w.Spec.Template.Spec.Containers...) {
				out[o.Kind+"/"+c.Name] = c.Image
			}
		}
	}
	return out
}

func checkImagesPinned(t *testing.T, b bundle) {
	t.Helper()
	for where, img := range images(t, b) {
		// A release tag (vX.Y.Z) or a digest; "latest", floating "v1" or none fail.
		repo, tag, _ := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		if repo == "" || (!versionTag.MatchString(tag) && !strings.Contains(img, "@sha256:")) {
			t.Errorf("%s: image %q is not pinned to a release tag", where, img)
		}
		name := where[strings.Index(where, "/")+1:]
		if name != "cloudsigma-csi-driver" && !strings.HasPrefix(img, "registry.k8s.io/sig-storage/") {
			t.Errorf("%s: sidecar image %q is not from registry.k8s.io/sig-storage", where, img)
		}
	}
}
