//go:build !nooutofservice

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cloudsigma-csi/driver/pkg/driver"
	"github.com/cloudsigma-csi/driver/pkg/outofservice"
)

// outOfServiceDefaultInterval is --out-of-service-interval's default.
const outOfServiceDefaultInterval = outofservice.DefaultInterval

// validateOutOfService checks the flags of the out-of-service reconciler,
// which runs in the controller only.
func (cfg config) validateOutOfService() error {
	switch {
	case cfg.outOfServiceAfter < 0:
		return fmt.Errorf("--out-of-service-after %s is negative", cfg.outOfServiceAfter)
	case cfg.outOfServiceInterval <= 0:
		return fmt.Errorf("--out-of-service-interval %s: give a positive duration, e.g. 30s", cfg.outOfServiceInterval)
	case cfg.outOfServiceTaint && cfg.mode == "node":
		return errors.New("--out-of-service-taint runs in the controller: use it with --mode=controller (or all), not --mode=node")
	case cfg.kubeconfig != "" && !cfg.outOfServiceTaint:
		return errors.New("--kubeconfig is only used by --out-of-service-taint, which is off")
	}
	return nil
}

// outOfServiceKube is the Kubernetes client of the out-of-service
// reconciler, nil when --out-of-service-taint is off: from --kubeconfig, else
// the pod's service account. It is built before anything starts, so a
// driver without API access fails at once rather than serve without it.
func outOfServiceKube(cfg config) (outofservice.Kube, error) {
	if !cfg.outOfServiceTaint {
		return nil, nil
	}
	var rc *rest.Config
	var err error
	if cfg.kubeconfig != "" {
		if rc, err = clientcmd.BuildConfigFromFlags("", cfg.kubeconfig); err != nil {
			return nil, fmt.Errorf("--out-of-service-taint: reading --kubeconfig %s: %w", cfg.kubeconfig, err)
		}
	} else if rc, err = rest.InClusterConfig(); err != nil {
		return nil, fmt.Errorf("--out-of-service-taint needs the Kubernetes API: %w; run the controller in a pod with a service account token (the chart's controller.outOfServiceTaint.enabled grants its RBAC), or pass --kubeconfig", err)
	}
	rc.UserAgent = "cloudsigma-csi-driver/" + driver.Version()
	rc.Timeout = 30 * time.Second // one request; the reconciler retries next pass
	return outofservice.NewKube(rc)
}

// startOutOfService runs the reconciler until ctx ends.
func startOutOfService(ctx context.Context, kube outofservice.Kube, cloud outofservice.Cloud, after, interval time.Duration) error {
	r, err := outofservice.New(outofservice.Config{Kube: kube, Cloud: cloud, After: after, Interval: interval})
	if err != nil {
		return err
	}
	go r.Run(ctx)
	return nil
}
