package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The controller's RBAC is each sidecar's own upstream RBAC, verb for verb:
// testdata/upstream-rbac holds the upstream files, copied verbatim from the
// sidecars' Go modules at the image tags we pin, under a header line naming
// module@version/path. For every sidecar the ClusterRole
// <prefix>-<sidecar> must grant exactly what the upstream runner
// ClusterRole grants, and the namespaced Roles (<prefix>-leader-election,
// shared by the four sidecars, plus a <prefix>-<sidecar> Role where upstream
// puts more in its Role) exactly what the upstream Role grants. A right of
// ours that upstream lacks is a failure; a right upstream grants that we
// leave out is a failure too, except on secrets: the CloudSigma credentials
// are mounted, and no StorageClass or VolumeSnapshotClass references one.
var upstreamSidecars = []string{"csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"}

// omittable are the upstream rights we may leave out, and why; anything
// we grant beyond upstream is always a failure.
var omittable = map[string]string{
	// No StorageClass or VolumeSnapshotClass references a secret: the
	// CloudSigma credentials are mounted into the driver container.
	"secrets": "no secret references",
	// csi-provisioner's Role (external-provisioner-cfg) beyond its leases
	// rule serves CSIStorageCapacity publishing, which runs only with
	// --enable-capacity and a driver with GET_CAPACITY: neither here.
	"csistoragecapacities": "no storage capacity tracking",
	"replicasets":          "no storage capacity tracking (owner lookup)",
}

// omittableInRole are rights left out of one sidecar's upstream Role only:
// pods get is there for the capacity owner lookup, while the resizer's
// ClusterRole needs pods and must keep them.
var omittableInRole = map[string]bool{"core/pods:get": true}

// upstreamHeader is the first line of every file in testdata/upstream-rbac.
var upstreamHeader = regexp.MustCompile(`^# From (\S+)@(v\d+\.\d+\.\d+)/(\S+), verbatim below this line\.$`)

type upstreamRBAC struct {
	file, module, version, path string
	body                        []byte // the file below the header
	clusterRole, role           []policyRule
}

// loadUpstreamRBAC reads testdata/upstream-rbac/<sidecar>-<tag>.yaml: the
// file for the image tag the rendering pins, so bumping an image without
// refreshing its rules fails here.
func loadUpstreamRBAC(t *testing.T, sidecar, tag string) upstreamRBAC {
	t.Helper()
	file := filepath.Join("testdata", "upstream-rbac", sidecar+"-"+tag+".yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%s is pinned at %s but its upstream RBAC is not in testdata: %v", sidecar, tag, err)
	}
	header, body, _ := bytes.Cut(data, []byte("\n"))
	m := upstreamHeader.FindStringSubmatch(string(header))
	if m == nil {
		t.Fatalf("%s: first line %q does not name module@version/path", file, header)
	}
	u := upstreamRBAC{file: file, module: m[1], version: m[2], path: m[3], body: body}
	if u.version != tag {
		t.Fatalf("%s: comes from %s@%s, the image is %s", file, u.module, u.version, tag)
	}
	roles := map[string]int{}
	for _, o := range parseDocs(t, file, body) {
		var r rbacRole
		switch o.Kind {
		case "ClusterRole":
			decode(t, o, &r)
			u.clusterRole = append(u.clusterRole, r.Rules...)
		case "Role":
			decode(t, o, &r)
			u.role = append(u.role, r.Rules...)
		default:
			continue
		}
		roles[o.Kind]++
	}
	if roles["ClusterRole"] != 1 || roles["Role"] > 1 {
		t.Fatalf("%s: want one ClusterRole and at most one Role, got %v", file, roles)
	}
	return u
}

// A right is one verb on one resource of one API group.
type right struct{ group, resource, verb string }

func (r right) String() string {
	g := r.group
	if g == "" {
		g = "core"
	}
	return g + "/" + r.resource + ":" + r.verb
}

func rightsOf(rules []policyRule) map[right]bool {
	out := map[right]bool{}
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					out[right{g, res, v}] = true
				}
			}
		}
	}
	return out
}

// diffRights lists what ours grants beyond upstream, and what upstream
// grants that ours lacks (omittable resources aside), each sorted.
func diffRights(ours, upstream []policyRule, omitAlso map[string]bool) (extra, missing []string) {
	o, u := rightsOf(ours), rightsOf(upstream)
	for r := range o {
		if !u[r] {
			extra = append(extra, r.String())
		}
	}
	for r := range u {
		if _, ok := omittable[r.resource]; !o[r] && !ok && !omitAlso[r.String()] {
			missing = append(missing, r.String())
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return extra, missing
}

// roleSuffix is what follows the naming prefix (cloudsigma-csi-, or the
// chart's fullname-) of our RBAC objects.
func roleSuffix(name string) string { return name[strings.LastIndex(name, "csi-")+len("csi-"):] }

// checkUpstreamRBAC compares a rendering's controller RBAC with upstream.
func checkUpstreamRBAC(t *testing.T, b bundle) {
	t.Helper()
	var dep workload
	decode(t, b.one(t, "Deployment"), &dep)
	controllerSA := dep.Spec.Template.Spec.ServiceAccountName
	imgs := images(t, b)

	// The Roles and ClusterRoles bound to the controller ServiceAccount, by
	// kind and suffix.
	bound := map[string][]policyRule{}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range b.ofKind(kind) {
			var rb rbacBinding
			decode(t, o, &rb)
			if !slices.ContainsFunc(rb.Subjects, func(s struct {
				Kind      string `json:"kind"`
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			}) bool {
				return s.Kind == "ServiceAccount" && s.Name == controllerSA
			}) {
				continue
			}
			ro, ok := b.find(rb.RoleRef.Kind, rb.RoleRef.Name)
			if !ok {
				t.Errorf("%s: roleRef %s/%s is not defined", o, rb.RoleRef.Kind, rb.RoleRef.Name)
				continue
			}
			var r rbacRole
			decode(t, ro, &r)
			key := ro.Kind + "/" + roleSuffix(ro.Metadata.Name)
			bound[key] = append(bound[key], r.Rules...)
		}
	}
	accounted := map[string]bool{"Role/leader-election": true}
	for _, sidecar := range upstreamSidecars {
		img := imgs["Deployment/"+sidecar]
		tag := img[strings.LastIndex(img, ":")+1:]
		u := loadUpstreamRBAC(t, sidecar, tag)
		short := strings.TrimPrefix(sidecar, "csi-")
		accounted["ClusterRole/"+short], accounted["Role/"+short] = true, true

		where := fmt.Sprintf("%s ClusterRole vs %s@%s/%s", sidecar, u.module, u.version, u.path)
		if _, ok := bound["ClusterRole/"+short]; !ok {
			t.Errorf("%s: no ClusterRole *-%s is bound to the controller ServiceAccount", where, short)
		}
		extra, missing := diffRights(bound["ClusterRole/"+short], u.clusterRole, nil)
		report(t, where, extra, missing)

		where = fmt.Sprintf("%s Roles (leader-election + %s) vs %s@%s/%s", sidecar, short, u.module, u.version, u.path)
		ours := append(slices.Clone(bound["Role/leader-election"]), bound["Role/"+short]...)
		extra, missing = diffRights(ours, u.role, omittableInRole)
		report(t, where, extra, missing)
	}
	for key, rules := range bound {
		if !accounted[key] {
			t.Errorf("%s bound to the controller ServiceAccount matches no sidecar's upstream RBAC: %+v", key, rules)
		}
	}
}

func report(t *testing.T, where string, extra, missing []string) {
	t.Helper()
	if len(extra) > 0 {
		t.Errorf("%s: we grant more than upstream: %v", where, extra)
	}
	if len(missing) > 0 {
		t.Errorf("%s: upstream grants what we leave out (only secrets may be): %v", where, missing)
	}
}

func TestRBACMatchesUpstreamChart(t *testing.T) { checkUpstreamRBAC(t, helmTemplate(t)) }

func TestRBACMatchesUpstreamKustomize(t *testing.T) {
	checkUpstreamRBAC(t, parseDocs(t, "kustomize build", run(t, tool(t, "kustomize"), "build", plainDir(t))))
}

// TestUpstreamRBACVerbatim checks the testdata against the module cache
// where the modules are there (go mod download module@version fetches one):
// the data must stay a copy, not an edited file that happens to pass.
func TestUpstreamRBACVerbatim(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	cache := strings.TrimSpace(string(out))
	files, err := filepath.Glob(filepath.Join("testdata", "upstream-rbac", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no upstream RBAC in testdata: %v", err)
	}
	compared := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		i := strings.LastIndex(name, "-v")
		u := loadUpstreamRBAC(t, name[:i], name[i+1:])
		src := filepath.Join(cache, filepath.FromSlash(u.module+"@"+u.version), filepath.FromSlash(u.path))
		orig, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			t.Logf("%s: %s is not in the module cache; not compared", f, src)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		compared++
		if !bytes.Equal(orig, u.body) {
			t.Errorf("%s differs from %s: copy it again (header line, then the file unchanged)", f, src)
		}
	}
	t.Logf("%d of %d upstream files compared with the module cache", compared, len(files))
}
