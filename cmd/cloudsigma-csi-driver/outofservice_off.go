//go:build nooutofservice

package main

import (
	"context"
	"errors"
	"time"
)

// Built with -tags nooutofservice, the binary has no out-of-service
// reconciler and links no client-go: its only user. tests/bench measures
// what that saves in idle memory.

const outOfServiceDefaultInterval = 30 * time.Second

func (cfg config) validateOutOfService() error {
	if cfg.outOfServiceTaint || cfg.kubeconfig != "" {
		return errors.New("--out-of-service-taint and --kubeconfig: this binary was built without the out-of-service reconciler (-tags nooutofservice)")
	}
	return nil
}

func outOfServiceKube(config) (any, error) { return nil, nil }

func startOutOfService(context.Context, any, any, time.Duration, time.Duration) error { return nil }
