package packaging

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func plainDir(t *testing.T) string { return filepath.Join(repoRoot(t), "deploy", "kubernetes") }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plainResources parses the files kustomization.yaml lists, directly: the
// manifests must work with `kubectl apply -f` too, without kustomize.
func plainResources(t *testing.T) ([]string, bundle) {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	decode(t, object{raw: readFile(t, filepath.Join(plainDir(t), "kustomization.yaml"))}, &k)
	var b bundle
	for _, r := range k.Resources {
		b = append(b, parseDocs(t, r, readFile(t, filepath.Join(plainDir(t), r)))...)
	}
	return k.Resources, b
}

func TestPlainManifests(t *testing.T) {
	resources, b := plainResources(t)
	checkBundle(t, b, expect{})
	if slices.Contains(resources, "secret.example.yaml") || len(b.ofKind("Secret")) != 0 {
		t.Error("the credentials Secret must not be part of the kustomization")
	}
	// Every manifest in the directory is either listed or the example Secret.
	entries, err := os.ReadDir(plainDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".yaml") && name != "kustomization.yaml" && name != "secret.example.yaml" && !slices.Contains(resources, name) {
			t.Errorf("%s is not listed in kustomization.yaml", name)
		}
	}
	// The ConfigMap the workloads read their settings from is in the bundle.
	cm, ok := b.find("ConfigMap", "cloudsigma-csi-config")
	if !ok {
		t.Fatal("ConfigMap cloudsigma-csi-config missing")
	}
	for _, key := range []string{"location:", "cluster-id:"} {
		if !strings.Contains(string(cm.raw), key) {
			t.Errorf("ConfigMap lacks %s", key)
		}
	}
}

func TestSecretExample(t *testing.T) {
	b := parseDocs(t, "secret.example.yaml", readFile(t, filepath.Join(plainDir(t), "secret.example.yaml")))
	o := b.one(t, "Secret")
	var s secret
	decode(t, o, &s)
	if o.Metadata.Name != "cloudsigma-credentials" || o.Metadata.Namespace != "kube-system" {
		t.Errorf("example Secret is %s/%s, want kube-system/cloudsigma-credentials", o.Metadata.Namespace, o.Metadata.Name)
	}
	if _, ok := s.StringData["username"]; !ok {
		t.Error("example Secret lacks username")
	}
	if _, ok := s.StringData["password"]; !ok {
		t.Error("example Secret lacks password")
	}
}

func TestKustomizeBuild(t *testing.T) {
	out := run(t, tool(t, "kustomize"), "build", plainDir(t))
	built := parseDocs(t, "kustomize build", out)
	checkBundle(t, built, expect{})
	_, direct := plainResources(t)
	key := func(o object) string { return o.Kind + "/" + o.Metadata.Namespace + "/" + o.Metadata.Name }
	var a, d []string
	for _, o := range built {
		a = append(a, key(o))
	}
	for _, o := range direct {
		d = append(d, key(o))
	}
	slices.Sort(a)
	slices.Sort(d)
	if !slices.Equal(a, d) {
		t.Errorf("kustomize build and the files differ:\nbuild: %v\nfiles: %v", a, d)
	}
}

// The chart and the plain manifests must ship the same images, RBAC rules
// and container arguments, so a fix in one cannot silently miss the other.
func TestPlainMatchesChart(t *testing.T) {
	_, plain := plainResources(t)
	chart := helmTemplate(t)

	pi, ci := images(t, plain), images(t, chart)
	if !maps.Equal(pi, ci) {
		t.Errorf("images differ:\nplain: %v\nchart: %v", pi, ci)
	}

	rules := func(b bundle) map[string]string {
		out := map[string]string{}
		for _, kind := range []string{"ClusterRole", "Role"} {
			for _, o := range b.ofKind(kind) {
				suffix := o.Metadata.Name[strings.LastIndex(o.Metadata.Name, "csi-")+4:]
				var r rbacRole
				decode(t, o, &r)
				var lines []string
				for _, rule := range r.Rules {
					lines = append(lines, strings.Join(rule.APIGroups, ",")+"|"+strings.Join(rule.Resources, ",")+"|"+strings.Join(rule.Verbs, ","))
				}
				out[kind+"/"+suffix] = strings.Join(lines, "\n")
			}
		}
		return out
	}
	if pr, cr := rules(plain), rules(chart); !maps.Equal(pr, cr) {
		t.Errorf("RBAC rules differ:\nplain: %v\nchart: %v", pr, cr)
	}

	for _, kind := range []string{"Deployment", "DaemonSet"} {
		var pw, cw workload
		decode(t, plain.one(t, kind), &pw)
		decode(t, chart.one(t, kind), &cw)
		for _, pc := range pw.Spec.Template.Spec.Containers {
			cc := containerByName(t, cw.Spec.Template.Spec, pc.Name)
			// The plain driver reads location and cluster ID from the ConfigMap.
			norm := func(args []string) []string {
				return slices.DeleteFunc(slices.Clone(args), func(a string) bool {
					return strings.HasPrefix(a, "--location=") || strings.HasPrefix(a, "--cluster-id=")
				})
			}
			if !slices.Equal(norm(pc.Args), norm(cc.Args)) {
				t.Errorf("%s/%s args differ:\nplain: %v\nchart: %v", kind, pc.Name, pc.Args, cc.Args)
			}
			// Mounts (path, read-only, propagation) and security settings too.
			if pm, cm := asJSON(t, pc.VolumeMounts), asJSON(t, cc.VolumeMounts); pm != cm {
				t.Errorf("%s/%s volumeMounts differ:\nplain: %s\nchart: %s", kind, pc.Name, pm, cm)
			}
			if ps, cs := asJSON(t, pc.SecurityContext), asJSON(t, cc.SecurityContext); ps != cs {
				t.Errorf("%s/%s securityContext differs:\nplain: %s\nchart: %s", kind, pc.Name, ps, cs)
			}
		}
		if ps, cs := asJSON(t, pw.Spec.Template.Spec.SecurityContext), asJSON(t, cw.Spec.Template.Spec.SecurityContext); ps != cs {
			t.Errorf("%s pod securityContext differs:\nplain: %s\nchart: %s", kind, ps, cs)
		}
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
