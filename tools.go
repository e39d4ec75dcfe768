//go:build tools

// Package tools pins the dependencies the packages grow into, so parallel work
// never races on go.mod. Removed once every import below is used for real.
package tools

import (
	_ "github.com/container-storage-interface/spec/lib/go/csi"
	_ "github.com/google/uuid"
	_ "github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "golang.org/x/time/rate"
	_ "google.golang.org/grpc"
	_ "k8s.io/klog/v2"
	_ "k8s.io/mount-utils"
	_ "k8s.io/utils/exec"
	_ "sigs.k8s.io/yaml"
)
