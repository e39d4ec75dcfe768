package packaging

import (
	"slices"
	"strings"
	"testing"
)

const outOfServiceRole = release + "-out-of-service"

// The rules the driver's out-of-service reconciler uses, and nothing else:
// it lists Nodes and patches them, and reads one CSINode at a time.
var outOfServiceRules = []policyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "patch"}},
	{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"csinodes"}, Verbs: []string{"get"}},
}

func controllerDriver(t *testing.T, b bundle) container {
	t.Helper()
	var dep workload
	decode(t, b.one(t, "Deployment"), &dep)
	return containerByName(t, dep.Spec.Template.Spec, "cloudsigma-csi-driver")
}

func objectKeys(b bundle) []string {
	var out []string
	for _, o := range b {
		out = append(out, o.Kind+"/"+o.Metadata.Name)
	}
	slices.Sort(out)
	return out
}

// grantsNodePatch: may anything in the bundle patch Nodes? Only the
// out-of-service reconciler needs that.
func grantsNodePatch(t *testing.T, b bundle) bool {
	t.Helper()
	var roles []rbacRole
	for _, o := range b.ofKind("ClusterRole") {
		var r rbacRole
		decode(t, o, &r)
		roles = append(roles, r)
	}
	return grants(roles, "", "nodes", "patch")
}

// Enabled, the chart adds the two driver flags, one ClusterRole with exactly
// the reconciler's rules and its binding to the controller ServiceAccount,
// and changes nothing else.
func TestHelmTemplateOutOfServiceTaintEnabled(t *testing.T) {
	off := helmTemplate(t)
	on := helmTemplate(t, "--set", "controller.outOfServiceTaint.enabled=true,controller.outOfServiceTaint.after=10m")
	checkBundle(t, on, expect{})

	driverOn, driverOff := controllerDriver(t, on), controllerDriver(t, off)
	requireArgs(t, "enabled", driverOn, "--out-of-service-taint", "--out-of-service-after=10m", "--out-of-service-interval=30s")
	rest := slices.DeleteFunc(slices.Clone(driverOn.Args), func(a string) bool { return strings.HasPrefix(a, "--out-of-service-") })
	if !slices.Equal(rest, driverOff.Args) {
		t.Errorf("enabling changed other driver args:\non:  %v\noff: %v", driverOn.Args, driverOff.Args)
	}

	want := append(objectKeys(off), "ClusterRole/"+outOfServiceRole, "ClusterRoleBinding/"+outOfServiceRole)
	slices.Sort(want)
	if got := objectKeys(on); !slices.Equal(got, want) {
		t.Errorf("objects enabled:\n%v\nwant the defaults plus the out-of-service ClusterRole and binding:\n%v", got, want)
	}
	for _, o := range off {
		if o.Kind == "Deployment" {
			continue
		}
		if p, ok := on.find(o.Kind, o.Metadata.Name); !ok || string(p.raw) != string(o.raw) {
			t.Errorf("%s differs when enabled:\n%s", o, p.raw)
		}
	}

	roleObj, _ := on.find("ClusterRole", outOfServiceRole)
	var role rbacRole
	decode(t, roleObj, &role)
	if !slices.EqualFunc(role.Rules, outOfServiceRules, func(a, b policyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs)
	}) {
		t.Errorf("%s rules %+v, want exactly %+v", roleObj, role.Rules, outOfServiceRules)
	}
	bindingObj, _ := on.find("ClusterRoleBinding", outOfServiceRole)
	var binding rbacBinding
	decode(t, bindingObj, &binding)
	var dep workload
	decode(t, on.one(t, "Deployment"), &dep)
	sa := dep.Spec.Template.Spec.ServiceAccountName
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != sa ||
		binding.Subjects[0].Namespace != "kube-system" || binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != outOfServiceRole {
		t.Errorf("%s binds %+v to %+v, want the controller ServiceAccount %s to ClusterRole %s", bindingObj, binding.Subjects, binding.RoleRef, sa, outOfServiceRole)
	}
	if !grantsNodePatch(t, on) {
		t.Error("enabled, nothing grants patch on nodes")
	}
}

// Disabled (the default, also with a grace time set) and in the plain
// manifests: no flag, no Kubernetes rights for the driver.
func TestOutOfServiceTaintOffByDefault(t *testing.T) {
	_, plain := plainResources(t)
	for name, b := range map[string]bundle{
		"chart defaults":            helmTemplate(t),
		"chart disabled with after": helmTemplate(t, "--set", "controller.outOfServiceTaint.enabled=false,controller.outOfServiceTaint.after=10m"),
		"plain manifests":           plain,
	} {
		if d := controllerDriver(t, b); hasArgPrefix(d, "--out-of-service") || hasArgPrefix(d, "--kubeconfig") {
			t.Errorf("%s: driver has out-of-service flags: %v", name, d.Args)
		}
		for _, o := range b {
			if strings.Contains(o.Metadata.Name, "out-of-service") {
				t.Errorf("%s: renders %s", name, o)
			}
		}
		if grantsNodePatch(t, b) {
			t.Errorf("%s: some ClusterRole grants patch on nodes", name)
		}
	}
	if got, want := objectKeys(helmTemplate(t, "--set", "controller.outOfServiceTaint.after=10m")), objectKeys(helmTemplate(t)); !slices.Equal(got, want) {
		t.Errorf("after alone changed the objects: %v", got)
	}
}
