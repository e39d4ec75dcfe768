package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The slices of the Kubernetes API these tests read. k8s.io/api is not a
// dependency of the module, and these few fields are all the checks need.
type meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   meta   `json:"metadata"`
	raw        []byte
	source     string
}

func (o object) String() string { return o.Kind + "/" + o.Metadata.Name + " (" + o.source + ")" }

type workload struct {
	Spec struct {
		Replicas *int `json:"replicas"`
		Template struct {
			Metadata meta    `json:"metadata"`
			Spec     podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type podSpec struct {
	ServiceAccountName           string            `json:"serviceAccountName"`
	AutomountServiceAccountToken *bool             `json:"automountServiceAccountToken"`
	PriorityClassName            string            `json:"priorityClassName"`
	NodeSelector                 map[string]string `json:"nodeSelector"`
	HostNetwork                  bool              `json:"hostNetwork"`
	SecurityContext              *struct {
		RunAsNonRoot   *bool           `json:"runAsNonRoot"`
		RunAsUser      *int64          `json:"runAsUser"`
		SeccompProfile *seccompProfile `json:"seccompProfile"`
	} `json:"securityContext"`
	Tolerations []struct {
		Key      string `json:"key"`
		Operator string `json:"operator"`
		Effect   string `json:"effect"`
	} `json:"tolerations"`
	InitContainers []container `json:"initContainers"`
	Containers     []container `json:"containers"`
	Volumes        []volume    `json:"volumes"`
}

type container struct {
	Name         string   `json:"name"`
	Image        string   `json:"image"`
	Args         []string `json:"args"`
	VolumeMounts []struct {
		Name             string `json:"name"`
		MountPath        string `json:"mountPath"`
		ReadOnly         bool   `json:"readOnly"`
		MountPropagation string `json:"mountPropagation"`
	} `json:"volumeMounts"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	SecurityContext *struct {
		Privileged               *bool  `json:"privileged"`
		AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool  `json:"runAsNonRoot"`
		RunAsUser                *int64 `json:"runAsUser"`
		Capabilities             *struct {
			Add  []string `json:"add"`
			Drop []string `json:"drop"`
		} `json:"capabilities"`
		SeccompProfile *seccompProfile `json:"seccompProfile"`
	} `json:"securityContext"`
	Env []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	LivenessProbe *struct {
		HTTPGet *struct {
			Path string `json:"path"`
			Port any    `json:"port"`
		} `json:"httpGet"`
	} `json:"livenessProbe"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
}

type seccompProfile struct {
	Type string `json:"type"`
}

type volume struct {
	Name     string `json:"name"`
	HostPath *struct {
		Path string `json:"path"`
		Type string `json:"type"`
	} `json:"hostPath"`
	Secret *struct {
		SecretName string `json:"secretName"`
	} `json:"secret"`
}

type csiDriverSpec struct {
	Spec struct {
		AttachRequired       *bool    `json:"attachRequired"`
		PodInfoOnMount       *bool    `json:"podInfoOnMount"`
		FSGroupPolicy        string   `json:"fsGroupPolicy"`
		VolumeLifecycleModes []string `json:"volumeLifecycleModes"`
	} `json:"spec"`
}

type storageClass struct {
	Provisioner          string            `json:"provisioner"`
	ReclaimPolicy        string            `json:"reclaimPolicy"`
	VolumeBindingMode    string            `json:"volumeBindingMode"`
	AllowVolumeExpansion *bool             `json:"allowVolumeExpansion"`
	MountOptions         []string          `json:"mountOptions"`
	Parameters           map[string]string `json:"parameters"`
}

type snapshotClass struct {
	Driver         string `json:"driver"`
	DeletionPolicy string `json:"deletionPolicy"`
}

type policyRule struct {
	APIGroups []string `json:"apiGroups"`
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

type rbacRole struct {
	Rules []policyRule `json:"rules"`
}

type rbacBinding struct {
	Subjects []struct {
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"subjects"`
	RoleRef struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"roleRef"`
}

type networkPolicyPort struct {
	Protocol string `json:"protocol"`
	Port     any    `json:"port"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"podSelector"`
		PolicyTypes []string `json:"policyTypes"`
		Ingress     []struct {
			From  []map[string]any    `json:"from"`
			Ports []networkPolicyPort `json:"ports"`
		} `json:"ingress"`
		Egress []struct {
			To    []map[string]any    `json:"to"`
			Ports []networkPolicyPort `json:"ports"`
		} `json:"egress"`
	} `json:"spec"`
}

type secret struct {
	StringData map[string]string `json:"stringData"`
	Data       map[string]string `json:"data"`
}

// bundle is every object of one rendering, in order.
type bundle []object

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// parseDocs splits a multi-document YAML stream; comment-only documents
// (helm emits them for templates that render nothing) are dropped.
func parseDocs(t *testing.T, source string, data []byte) bundle {
	t.Helper()
	var out bundle
	for i, doc := range docSeparator.Split(string(data), -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%s: document %d is not valid YAML: %v\n%s", source, i, err, doc)
		}
		if o.Kind == "" && o.APIVersion == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				t.Fatalf("%s: document %d has no kind:\n%s", source, i, doc)
			}
			continue
		}
		if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: document %d lacks kind, apiVersion or metadata.name:\n%s", source, i, doc)
		}
		o.raw, o.source = []byte(doc), source
		out = append(out, o)
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decode reads an object's document into one of the API slices above,
// rejecting unknown fields nowhere: the slices are deliberately partial.
func decode(t *testing.T, o object, v any) {
	t.Helper()
	if err := yaml.Unmarshal(o.raw, v); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
}

func (b bundle) ofKind(kind string) []object {
	var out []object
	for _, o := range b {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of a kind, failing on none or several.
func (b bundle) one(t *testing.T, kind string) object {
	t.Helper()
	objs := b.ofKind(kind)
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(objs))
	}
	return objs[0]
}

func (b bundle) find(kind, name string) (object, bool) {
	for _, o := range b {
		if o.Kind == kind && o.Metadata.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// tool finds a binary installed by hack/install-tools.sh. A missing tool
// fails the test: skipping would let CI pass without checking the packaging.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath := strings.SplitN(strings.TrimSpace(string(out)), string(os.PathListSeparator), 2)[0]
		p := filepath.Join(gopath, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed (not on PATH nor in $(go env GOPATH)/bin): run hack/install-tools.sh", name)
	return ""
}

// run executes a command and returns its stdout, failing with stderr shown.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, stderr, err := tryRun(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr)
	}
	return out
}

func tryRun(name string, args ...string) (stdout []byte, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.String(), err
}
