package packaging

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The chart's network options: metrics.bindAddress, proxy.* and
// networkPolicy.*. Their defaults change nothing: all addresses, no proxy
// variables, no NetworkPolicy.

func envOf(c container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// workloads decodes the controller Deployment and the node DaemonSet.
func workloads(t *testing.T, b bundle) (ctrl, node podSpec) {
	t.Helper()
	var dep, ds workload
	decode(t, b.one(t, "Deployment"), &dep)
	decode(t, b.one(t, "DaemonSet"), &ds)
	return dep.Spec.Template.Spec, ds.Spec.Template.Spec
}

var proxyVars = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}

// checkProxyEnv: the proxy variables are want on the controller's driver
// container and on no other container of either plugin.
func checkProxyEnv(t *testing.T, b bundle, want map[string]string) {
	t.Helper()
	ctrl, node := workloads(t, b)
	for _, p := range []struct {
		name string
		spec podSpec
	}{{"controller", ctrl}, {"node", node}} {
		for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
			got := map[string]string{}
			for k, v := range envOf(c) {
				if slices.Contains(proxyVars, k) {
					got[k] = v
				}
			}
			expected := map[string]string{}
			if p.name == "controller" && c.Name == "cloudsigma-csi-driver" {
				expected = want
			}
			if !reflect.DeepEqual(got, expected) {
				t.Errorf("%s/%s: proxy variables %v, want %v", p.name, c.Name, got, expected)
			}
		}
	}
}

func checkMetricsAddress(t *testing.T, b bundle, want string) {
	t.Helper()
	ctrl, node := workloads(t, b)
	for _, p := range []podSpec{ctrl, node} {
		requireArgs(t, "metrics", containerByName(t, p, "cloudsigma-csi-driver"), "--metrics-address="+want)
	}
}

func TestHelmNetworkDefaults(t *testing.T) {
	b := helmTemplate(t)
	if n := len(b.ofKind("NetworkPolicy")); n != 0 {
		t.Errorf("networkPolicy.enabled is false by default, yet %d NetworkPolicies rendered", n)
	}
	checkProxyEnv(t, b, map[string]string{})
	checkMetricsAddress(t, b, ":9809")
}

func TestHelmMetricsBindAddress(t *testing.T) {
	for set, want := range map[string]string{
		"metrics.bindAddress=0.0.0.0":                    "0.0.0.0:9809",
		"metrics.bindAddress=::":                         "[::]:9809",
		"metrics.bindAddress=10.1.2.3,metrics.port=9900": "10.1.2.3:9900",
	} {
		checkMetricsAddress(t, helmTemplate(t, "--set", set), want)
	}
	helm := tool(t, "helm")
	for _, c := range []struct{ set, msg string }{
		{"metrics.bindAddress=127.0.0.1", "loopback"},
		{"metrics.bindAddress=::1", "loopback"},
		{"metrics.bindAddress=localhost", "loopback"},
		{"metrics.bindAddress=0.0.0.0:9809", "/metrics/bindAddress"},
		{"proxy.httpsProxy=http://u:pw@proxy:3128", "proxy.httpsProxy must not carry credentials"},
		{"proxy.httpsProxy=proxy:3128", "/proxy/httpsProxy"},
		{"networkPolicy.metricsFrom[0].namespace=monitoring", "additional properties 'namespace' not allowed"},
		{"networkPolicy.apiServerPorts[0]=0", "/networkPolicy/apiServerPorts/0"},
	} {
		_, stderr, err := tryRun(helm, "template", release, chartDir(t), "--set", c.set)
		if err == nil || !strings.Contains(stderr, c.msg) {
			t.Errorf("--set %s: want a failure mentioning %q, got err=%v\n%s", c.set, c.msg, err, stderr)
		}
	}
	// Metrics off: the bind address is not used, so not checked either.
	helmTemplate(t, "--set", "metrics.enabled=false,metrics.bindAddress=127.0.0.1")
}

func TestHelmProxy(t *testing.T) {
	b := helmTemplate(t, "--set", "proxy.httpsProxy=http://proxy.example.com:3128,proxy.noProxy=.internal")
	checkProxyEnv(t, b, map[string]string{"HTTPS_PROXY": "http://proxy.example.com:3128", "NO_PROXY": ".internal"})
	checkProxyEnv(t, helmTemplate(t, "-f", filepath.Join("testdata", "values-full.yaml")),
		map[string]string{"HTTPS_PROXY": "http://proxy.example.com:3128", "NO_PROXY": ".svc,.cluster.local"})
}

// policies returns the rendering's NetworkPolicies by component, checking
// that each selects exactly its plugin's pods and isolates both directions.
func policies(t *testing.T, b bundle) map[string]networkPolicy {
	t.Helper()
	var dep, ds workload
	decode(t, b.one(t, "Deployment"), &dep)
	decode(t, b.one(t, "DaemonSet"), &ds)
	pods := map[string]map[string]string{
		"controller": dep.Spec.Template.Metadata.Labels,
		"node":       ds.Spec.Template.Metadata.Labels,
	}
	out := map[string]networkPolicy{}
	for _, o := range b.ofKind("NetworkPolicy") {
		var np networkPolicy
		decode(t, o, &np)
		sel := np.Spec.PodSelector.MatchLabels
		var selects []string
		for component, labels := range pods {
			if len(sel) > 0 && matches(sel, labels) {
				selects = append(selects, component)
			}
		}
		if len(selects) != 1 {
			t.Fatalf("%s selects %v, want exactly one plugin's pods", o, selects)
		}
		if _, dup := out[selects[0]]; dup {
			t.Fatalf("two NetworkPolicies for the %s pods", selects[0])
		}
		if pt := slices.Sorted(slices.Values(np.Spec.PolicyTypes)); !slices.Equal(pt, []string{"Egress", "Ingress"}) {
			t.Errorf("%s: policyTypes %v, want Ingress and Egress", o, np.Spec.PolicyTypes)
		}
		out[selects[0]] = np
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func portString(p networkPolicyPort) string {
	proto := p.Protocol
	if proto == "" {
		proto = "TCP"
	}
	return fmt.Sprintf("%s/%v", proto, p.Port)
}

// checkIngress: either no ingress at all, or one rule: from exactly the
// peers given, to the metrics port only.
func checkIngress(t *testing.T, component string, np networkPolicy, from []map[string]any, metricsPort int) {
	t.Helper()
	in := np.Spec.Ingress
	if from == nil {
		if len(in) != 0 {
			t.Errorf("%s: ingress %+v, want none", component, in)
		}
		return
	}
	if len(in) != 1 {
		t.Fatalf("%s: %d ingress rules, want one", component, len(in))
	}
	if got, want := asJSON(t, in[0].From), asJSON(t, from); got != want {
		t.Errorf("%s: ingress from %s, want %s", component, got, want)
	}
	if len(in[0].From) == 0 {
		t.Errorf("%s: an ingress rule without from admits everyone", component)
	}
	var ports []string
	for _, p := range in[0].Ports {
		ports = append(ports, portString(p))
	}
	if want := []string{fmt.Sprintf("TCP/%d", metricsPort)}; !slices.Equal(ports, want) {
		t.Errorf("%s: ingress ports %v, want %v", component, ports, want)
	}
}

// egressPorts lists the ports of the rules that allow any destination; a
// rule with neither ports nor destinations (allow all) fails.
func egressPorts(t *testing.T, np networkPolicy) []string {
	t.Helper()
	var out []string
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			t.Errorf("egress rule %+v allows every port", r)
		}
		if len(r.To) != 0 {
			continue
		}
		for _, p := range r.Ports {
			out = append(out, portString(p))
		}
	}
	slices.Sort(out)
	return out
}

func TestHelmNetworkPolicy(t *testing.T) {
	prometheus := []map[string]any{{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}},
		"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "prometheus"}},
	}}
	for _, c := range []struct {
		name   string
		flags  []string
		from   []map[string]any // nil: no ingress
		port   int
		egress []string // controller egress ports to any address
	}{
		{"no peers", []string{"--set", "networkPolicy.enabled=true"},
			nil, 9809, []string{"TCP/443", "TCP/53", "TCP/6443", "UDP/53"}},
		{"metrics off", []string{"--set", "networkPolicy.enabled=true,metrics.enabled=false,networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prom"},
			nil, 9809, []string{"TCP/443", "TCP/53", "TCP/6443", "UDP/53"}},
		{"apiUrl port, no API server ports", []string{"--set", "networkPolicy.enabled=true,apiUrl=https://api.example.com:8443/api/2.0/,networkPolicy.apiServerPorts=null"},
			nil, 9809, []string{"TCP/53", "TCP/8443", "UDP/53"}},
		{"https proxy on 443", []string{"--set", "networkPolicy.enabled=true,proxy.httpsProxy=https://proxy.example.com"},
			nil, 9809, []string{"TCP/443", "TCP/53", "TCP/6443", "UDP/53"}},
		// apiUrl http://127.0.0.1:8080, proxy on 3128, API server on 6443 and 16443.
		{"values-full", []string{"-f", filepath.Join("testdata", "values-full.yaml")},
			prometheus, 9900, []string{"TCP/16443", "TCP/3128", "TCP/53", "TCP/6443", "TCP/8080", "UDP/53"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := helmTemplate(t, c.flags...)
			nps := policies(t, b)
			if len(nps) != 2 {
				t.Fatalf("want a NetworkPolicy for the controller and one for the node, got %d", len(nps))
			}
			for _, component := range []string{"controller", "node"} {
				checkIngress(t, component, nps[component], c.from, c.port)
			}
			if eg := nps["node"].Spec.Egress; len(eg) != 0 {
				t.Errorf("node: egress %+v, want none: the node plugin talks to no API", eg)
			}
			if got := egressPorts(t, nps["controller"]); !slices.Equal(got, c.egress) {
				t.Errorf("controller egress ports %v, want %v", got, c.egress)
			}
		})
	}
	// extraEgress is appended as given.
	b := helmTemplate(t, "-f", filepath.Join("testdata", "values-full.yaml"))
	eg := policies(t, b)["controller"].Spec.Egress
	last := eg[len(eg)-1]
	if len(last.To) != 1 || asJSON(t, last.To[0]) != `{"ipBlock":{"cidr":"10.20.0.0/16"}}` || len(last.Ports) != 1 || portString(last.Ports[0]) != "TCP/9443" {
		t.Errorf("networkPolicy.extraEgress not appended: %+v", last)
	}
}
