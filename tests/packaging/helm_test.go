package packaging

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const release = "cloudsigma-csi"

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "charts", "cloudsigma-csi") }

// helmTemplate renders the chart into kube-system with extra helm flags.
func helmTemplate(t *testing.T, flags ...string) bundle {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "--namespace", "kube-system"}, flags...)
	return parseDocs(t, "helm template "+strings.Join(flags, " "), run(t, tool(t, "helm"), args...))
}

func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm")
	for _, flags := range [][]string{
		nil,
		{"--strict"},
		{"--strict", "-f", filepath.Join("testdata", "values-full.yaml")},
		{"--strict", "--set", "metrics.enabled=false,volumeSnapshotClass.enabled=false,credentials.existingSecret=mine"},
	} {
		out := run(t, helm, append([]string{"lint", chartDir(t)}, flags...)...)
		if !strings.Contains(string(out), "0 chart(s) failed") || strings.Contains(string(out), "[WARNING]") {
			t.Errorf("helm lint %v:\n%s", flags, out)
		}
	}
}

func TestHelmTemplateDefaults(t *testing.T) {
	b := helmTemplate(t)
	checkBundle(t, b, expect{})
	if n := len(b.ofKind("Secret")); n != 0 {
		t.Errorf("default values must not create a Secret (credentials come from an existing one), got %d", n)
	}
	if n := len(b.ofKind("ServiceMonitor")); n != 0 {
		t.Errorf("ServiceMonitor rendered although metrics.serviceMonitor.enabled is false")
	}
	var dep workload
	decode(t, b.one(t, "Deployment"), &dep)
	driver := containerByName(t, dep.Spec.Template.Spec, "cloudsigma-csi-driver")
	requireArgs(t, "controller", driver, "--location=zrh", "--metrics-address=:9809", "-v=2")
	if hasArgPrefix(driver, "--cluster-id") || hasArg(driver, "--allow-insecure-http") {
		t.Errorf("defaults must leave --cluster-id and --allow-insecure-http out: %v", driver.Args)
	}
	appVersion := chartAppVersion(t)
	if driver.Image != "ghcr.io/cloudsigma-csi/cloudsigma-csi-controller:v"+appVersion {
		t.Errorf("controller image %q, want the controller image at tag v%s (the chart's appVersion)", driver.Image, appVersion)
	}
	var ds workload
	decode(t, b.one(t, "DaemonSet"), &ds)
	if img := containerByName(t, ds.Spec.Template.Spec, "cloudsigma-csi-driver").Image; img != "ghcr.io/cloudsigma-csi/cloudsigma-csi-node:v"+appVersion {
		t.Errorf("node image %q, want the node image at tag v%s", img, appVersion)
	}
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	decode(t, object{raw: readFile(t, filepath.Join(chartDir(t), "Chart.yaml"))}, &chart)
	return chart.AppVersion
}

func TestHelmTemplateAllOptions(t *testing.T) {
	b := helmTemplate(t, "-f", filepath.Join("testdata", "values-full.yaml"))
	checkBundle(t, b, expect{kubeletDir: "/var/lib/k0s/kubelet", secret: release + "-credentials"})

	s, ok := b.find("Secret", release+"-credentials")
	if !ok {
		t.Fatal("inline credentials must create the Secret " + release + "-credentials")
	}
	var sec secret
	decode(t, s, &sec)
	if sec.StringData["username"] != "ops@example.com" || sec.StringData["password"] != "s3cret" || sec.StringData["token"] != "tok" {
		t.Errorf("credentials Secret keys: %v", sec.StringData)
	}

	var dep, ds workload
	decode(t, b.one(t, "Deployment"), &dep)
	decode(t, b.one(t, "DaemonSet"), &ds)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("controller.replicas not applied")
	}
	cp, np := dep.Spec.Template.Spec, ds.Spec.Template.Spec
	// The controller talks to the API; the node plugin only reports the
	// location as its topology, derived as the controller derives it.
	ctrl := containerByName(t, cp, "cloudsigma-csi-driver")
	requireArgs(t, "controller", ctrl, "--api-url=http://127.0.0.1:8080/api/2.0/", "--allow-insecure-http")
	if hasArgPrefix(ctrl, "--location") {
		t.Errorf("apiUrl must replace --location: %v", ctrl.Args)
	}
	nodeDriver := containerByName(t, np, "cloudsigma-csi-driver")
	requireArgs(t, "node", nodeDriver, "--location=local")
	if hasArgPrefix(nodeDriver, "--api-url") || hasArg(nodeDriver, "--allow-insecure-http") {
		t.Errorf("the node plugin needs no API: %v", nodeDriver.Args)
	}
	wantImage := map[string]string{
		"controller": "registry.example.com/cloudsigma-csi-controller:v9.9.9@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		"node":       "registry.example.com/cloudsigma-csi-node:v9.9.9",
	}
	if img := containerByName(t, cp, "csi-provisioner").Image; img != "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0@sha256:2222222222222222222222222222222222222222222222222222222222222222" {
		t.Errorf("provisioner digest ignored: %s", img)
	}
	for which, p := range map[string]podSpec{"controller": cp, "node": np} {
		d := containerByName(t, p, "cloudsigma-csi-driver")
		requireArgs(t, "driver", d, "--metrics-address=0.0.0.0:9900", "-v=5", "--virtio-units=4")
		if d.Image != wantImage[which] {
			t.Errorf("%s image %s, want the override %s", which, d.Image, wantImage[which])
		}
		if !slices.ContainsFunc(d.Ports, func(p struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		}) bool {
			return p.Name == "metrics" && p.ContainerPort == 9900
		}) {
			t.Errorf("driver lacks the metrics port 9900: %+v", d.Ports)
		}
	}
	requireArgs(t, "controller", containerByName(t, cp, "cloudsigma-csi-driver"), "--cluster-id=prod-eu",
		"--out-of-service-taint", "--out-of-service-after=10m")
	requireArgs(t, "node", containerByName(t, np, "cloudsigma-csi-driver"), "--max-volumes-per-node=12")
	requireArgs(t, "sidecars", containerByName(t, cp, "csi-provisioner"), "--v=5")
	if cp.NodeSelector["node-role.kubernetes.io/control-plane"] != "" || len(cp.Tolerations) != 1 {
		t.Errorf("controller nodeSelector/tolerations not applied: %v %v", cp.NodeSelector, cp.Tolerations)
	}

	xfs, ok := b.find("StorageClass", "cloudsigma-ssd-xfs")
	if !ok {
		t.Fatal("second StorageClass missing")
	}
	var sc storageClass
	decode(t, xfs, &sc)
	if sc.ReclaimPolicy != "Retain" || sc.VolumeBindingMode != "Immediate" || sc.AllowVolumeExpansion == nil || *sc.AllowVolumeExpansion ||
		!slices.Equal(sc.MountOptions, []string{"noatime"}) {
		t.Errorf("StorageClass options not applied: %+v", sc)
	}
	want := map[string]string{"storageType": "ssd", "csi.storage.k8s.io/fstype": "xfs", "formatOptions": "-m reflink=0", "tags": "team-a,backup"}
	for k, v := range want {
		if sc.Parameters[k] != v {
			t.Errorf("StorageClass parameter %s = %q, want %q", k, sc.Parameters[k], v)
		}
	}
	if xfs.Metadata.Annotations["storageclass.kubernetes.io/is-default-class"] != "" {
		t.Error("a non-default StorageClass got the default annotation")
	}
	vsc, _ := b.find("VolumeSnapshotClass", "cloudsigma-snapshots")
	if vsc.Metadata.Annotations["snapshot.storage.kubernetes.io/is-default-class"] != "true" {
		t.Error("volumeSnapshotClass.isDefault not applied")
	}

	sm := b.one(t, "ServiceMonitor")
	if sm.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels: %v", sm.Metadata.Labels)
	}
	if !strings.Contains(string(sm.raw), "interval: 15s") || !strings.Contains(string(sm.raw), "port: metrics") {
		t.Errorf("ServiceMonitor endpoint:\n%s", sm.raw)
	}
	services := b.ofKind("Service")
	if len(services) != 2 {
		t.Fatalf("want a metrics Service per plugin, got %d", len(services))
	}
	for _, svc := range services {
		if svc.Metadata.Labels["cloudsigma-csi/metrics"] != "true" || !strings.Contains(string(svc.raw), "port: 9900") {
			t.Errorf("%s is not selected by the ServiceMonitor or has the wrong port:\n%s", svc, svc.raw)
		}
	}
}

// A token alone is a complete inline credential: the chart creates the
// Secret with only that key and the controller mounts it.
func TestHelmTemplateTokenOnlyCredentials(t *testing.T) {
	b := helmTemplate(t, "--set", "credentials.token=t0ken")
	secret := b.one(t, "Secret")
	if !strings.Contains(string(secret.raw), `token: "t0ken"`) || strings.Contains(string(secret.raw), "username:") {
		t.Fatalf("token-only Secret:\n%s", secret.raw)
	}
	if !strings.Contains(string(b.one(t, "Deployment").raw), "secretName: "+secret.Metadata.Name) {
		t.Errorf("the controller does not mount the Secret %s", secret.Metadata.Name)
	}
}

func TestHelmTemplateMetricsOff(t *testing.T) {
	b := helmTemplate(t, "--set", "metrics.enabled=false,metrics.serviceMonitor.enabled=true,volumeSnapshotClass.enabled=false")
	if len(b.ofKind("ServiceMonitor"))+len(b.ofKind("Service"))+len(b.ofKind("VolumeSnapshotClass")) != 0 {
		t.Error("disabled metrics or snapshot class still rendered objects")
	}
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		var w workload
		decode(t, b.one(t, kind), &w)
		if d := containerByName(t, w.Spec.Template.Spec, "cloudsigma-csi-driver"); hasArgPrefix(d, "--metrics-address") {
			t.Errorf("%s: --metrics-address set although metrics.enabled=false", kind)
		}
	}
}

// Contradictory settings must fail at render time, not in the cluster.
func TestHelmTemplateRejectsBadValues(t *testing.T) {
	helm := tool(t, "helm")
	for _, c := range []struct{ set, msg string }{
		{"credentials.username=a,credentials.password=b,credentials.existingSecret=c", "not both"},
		{"credentials.username=a", "credentials.password is required"},
		{"credentials.token=t,credentials.existingSecret=c", "not both"},
		{"apiUrl=http://sim:8080/api/2.0/", "allowInsecureHttp"},
		{"location=,apiUrl=", "set location"},
		// values.schema.json: typos and missing names fail before rendering.
		{"storageClasses[0].parameters.storageType=dssd", "missing property 'name'"},
		{"locaton=fra", "additional properties 'locaton' not allowed"},
		{"images.attacher.tag=latest", "/images/attacher/tag"},
		{"storageClasses[0].name=x,storageClasses[0].parameters.csi\\.storage\\.k8s\\.io/fstype=btrfs", "fstype"},
		{"controller.outOfServiceTaint.after=5", "/controller/outOfServiceTaint/after"},
		{"controller.outOfServiceTaint.enable=true", "additional properties 'enable' not allowed"},
	} {
		_, stderr, err := tryRun(helm, "template", release, chartDir(t), "--set", c.set)
		if err == nil || !strings.Contains(stderr, c.msg) {
			t.Errorf("--set %s: want a failure mentioning %q, got err=%v\n%s", c.set, c.msg, err, stderr)
		}
	}
}

// NOTES.txt is only rendered by `helm install`, which needs a cluster even
// with --dry-run=client. So the test renders it through `helm template`: in a
// copy of the chart, a ConfigMap template runs NOTES.txt with tpl.
// chartWithNotes copies the chart with a template that renders NOTES.txt
// into a ConfigMap (templates/zz-notes.yaml), so helm template shows it.
func chartWithNotes(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cloudsigma-csi")
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.src"), readFile(t, filepath.Join(dir, "templates", "NOTES.txt")), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered-notes\ndata:\n  notes: |\n    {{- tpl (.Files.Get \"notes.src\") . | nindent 4 }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestHelmNotesRender(t *testing.T) {
	dir := chartWithNotes(t)
	for _, c := range []struct {
		set  string
		want []string
	}{
		{"", []string{"create secret generic cloudsigma-credentials", "Expansion is offline",
			"StorageClass cloudsigma-dssd (default): storageType=dssd", "https://zrh.cloudsigma.com/api/2.0/", "VolumeSnapshotClass cloudsigma-snapshots"}},
		{"credentials.username=u,credentials.password=p,apiUrl=https://api.example.com/api/2.0/,metrics.serviceMonitor.enabled=true,controller.outOfServiceTaint.enabled=true",
			[]string{"Secret cloudsigma-csi-credentials", "https://api.example.com/api/2.0/", "ServiceMonitor cloudsigma-csi",
				"Out-of-service taint: on. A node NotReady for 5m"}},
	} {
		args := []string{"template", release, dir, "--namespace", "kube-system", "--show-only", "templates/zz-notes.yaml"}
		if c.set != "" {
			args = append(args, "--set", c.set)
		}
		var cm struct {
			Data map[string]string `json:"data"`
		}
		decode(t, object{raw: run(t, tool(t, "helm"), args...)}, &cm)
		notes := cm.Data["notes"]
		for _, w := range c.want {
			if !strings.Contains(notes, w) {
				t.Errorf("--set %q: NOTES lack %q:\n%s", c.set, w, notes)
			}
		}
		if c.set != "" && strings.Contains(notes, "create secret generic") {
			t.Errorf("NOTES ask to create a Secret the chart created:\n%s", notes)
		}
		if c.set == "" && strings.Contains(notes, "Out-of-service") {
			t.Errorf("NOTES mention the out-of-service taint, which is off:\n%s", notes)
		}
	}
}

// No rendered object carries a digest of the credentials: a pod annotation
// is readable by anyone who may list pods, and a hash of a weak password is
// as good as the password.
func TestHelmTemplateNoCredentialDigest(t *testing.T) {
	args := []string{"template", release, chartDir(t), "--namespace", "kube-system",
		"--set", "credentials.username=u@example.com", "--set", "credentials.password=hunter2"}
	out := string(run(t, tool(t, "helm"), args...))
	digest := regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "checksum/") || digest.MatchString(line) {
			t.Errorf("rendered chart carries a digest: %s", strings.TrimSpace(line))
		}
	}
}

// Credentials set everywhere the chart takes them appear in the one Secret
// it makes and nowhere else: not in a pod spec, not in an annotation, not in
// NOTES.txt; the node plugin gets no API URL at all; and an apiUrl that
// carries credentials is refused.
func TestHelmNoSecretOutsideTheSecret(t *testing.T) {
	const user, password, token = "ops@example.com", "Pa55-w0rd-in-chart", "t0ken-in-chart"
	dir := chartWithNotes(t)
	helm := tool(t, "helm")
	set := "credentials.username=" + user + ",credentials.password=" + password + ",credentials.token=" + token +
		",apiUrl=https://fra.cloudsigma.com/api/2.0/,metrics.serviceMonitor.enabled=true"
	out := string(run(t, helm, "template", release, dir, "--namespace", "kube-system", "--set", set))
	secrets := []string{password, token,
		base64.StdEncoding.EncodeToString([]byte(password)), base64.StdEncoding.EncodeToString([]byte(token))}
	found := false
	for _, doc := range docSeparator.Split(out, -1) {
		isSecret := regexp.MustCompile(`(?m)^kind: Secret$`).MatchString(doc)
		for _, s := range secrets {
			if strings.Contains(doc, s) {
				if !isSecret {
					t.Errorf("a credential is rendered outside the Secret:\n%s", doc)
				}
				found = true
			}
		}
		if strings.Contains(doc, "--mode=node") && strings.Contains(doc, "--api-url") {
			t.Errorf("the node plugin gets the API URL: it needs only the location")
		}
	}
	if !found {
		t.Error("the inline credentials are in no Secret either: the test rendered nothing useful")
	}

	bad := []string{"template", release, dir, "--namespace", "kube-system", "--set", "apiUrl=https://u:" + password + "@fra.cloudsigma.com/api/2.0/"}
	cmd := exec.Command(helm, bad...)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "apiUrl must not carry credentials") {
		t.Errorf("an apiUrl with credentials: %v\n%s", err, msg)
	}
}
