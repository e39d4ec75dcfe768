// Package packaging tests what is shipped besides the Go code: the Helm chart
// in charts/cloudsigma-csi and the plain manifests in deploy/kubernetes. The
// tests run the real helm and kustomize binaries (hack/install-tools.sh
// installs them) and check the rendered objects, not the templates' text.
package packaging
