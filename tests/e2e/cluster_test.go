//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// cluster is etcd, kube-apiserver and kube-controller-manager on loopback
// ports, with a CA of its own and a static admin token (system:masters).
type cluster struct {
	dir        string // certificates, kubeconfigs, etcd data
	server     string // https://127.0.0.1:PORT
	caPEM      []byte
	adminToken string
	admin      *rest.Config
}

func startCluster(ctx context.Context, e *env) (*cluster, error) {
	t := e.t
	c := &cluster{dir: filepath.Join(e.work, "cluster"), adminToken: randomHex(16)}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, err
	}
	if err := c.writeCerts(); err != nil {
		return nil, err
	}
	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if _, err := e.procs.start("etcd", e.bin("etcd"), nil,
		"--data-dir", filepath.Join(c.dir, "etcd"), "--name", "e2e",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--log-level", "warn"); err != nil {
		return nil, err
	}

	port := freePort(t)
	c.server = fmt.Sprintf("https://127.0.0.1:%d", port)
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.adminToken+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	if _, err := e.procs.start("kube-apiserver", e.bin("kube-apiserver"), nil,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		// The reconciler refuses a loopback address for the kubernetes
		// Service's endpoints; nothing here needs that Service.
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", c.path("apiserver.crt"), "--tls-private-key-file", c.path("apiserver.key"),
		"--token-auth-file", tokens,
		// RBAC alone: the sidecars get exactly what deploy/kubernetes grants.
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", c.path("sa.key"), "--service-account-signing-key-file", c.path("sa.key"),
		"--service-cluster-ip-range", "10.0.0.0/24",
		// The node plugin's DaemonSet is privileged; the dry-run checks it too.
		"--allow-privileged",
		"--cert-dir", c.dir); err != nil {
		return nil, err
	}
	c.admin = &rest.Config{Host: c.server, BearerToken: c.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM}, QPS: 50, Burst: 100}
	kc, err := kubernetes.NewForConfig(c.admin)
	if err != nil {
		return nil, err
	}
	if err := e.eventually(ctx, "kube-apiserver /readyz", func(ctx context.Context) error {
		_, err := kc.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, err
	}

	adminKubeconfig := c.path("admin.kubeconfig")
	if err := c.writeKubeconfig(adminKubeconfig, c.adminToken); err != nil {
		return nil, err
	}
	// The PV controller binds claims to volumes; the test plays kubelet and
	// the attach/detach controller (VolumeAttachments by hand), so that
	// controller is off lest it detach what no pod uses.
	if _, err := e.procs.start("kube-controller-manager", e.bin("kube-controller-manager"), nil,
		"--kubeconfig", adminKubeconfig, "--authentication-kubeconfig", adminKubeconfig,
		"--authorization-kubeconfig", adminKubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(freePort(t)),
		"--leader-elect=false", "--controllers", "*,-attachdetach",
		"--service-account-private-key-file", c.path("sa.key"), "--root-ca-file", c.path("ca.crt"),
		"--cert-dir", filepath.Join(c.dir, "kcm")); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cluster) path(name string) string { return filepath.Join(c.dir, name) }

// writeKubeconfig writes a kubeconfig for this API server with a bearer token.
func (c *cluster) writeKubeconfig(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.server, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "user"}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// writeCerts makes a CA, the API server's serving certificate for
// 127.0.0.1 and the service account signing key.
func (c *cluster) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":        c.caPEM,
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
