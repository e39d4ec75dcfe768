package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/driver"
	"github.com/cloudsigma-csi/driver/pkg/servercontext"
)

// onIdentityMode receives the node's identity mode (run: the metric).
var onIdentityMode func(mode string)

// nodeFinder is the node's device finder: serials where the guest shows
// drive UUIDs, else the evidence of docs/identity.md, which reads this
// server's context at each identification.
func nodeFinder(cfg config, nodeID string) (*device.VirtioFinder, error) {
	mode, err := device.ParseMode(cfg.driveIdentity)
	if err != nil {
		return nil, err
	}
	return &device.VirtioFinder{
		ByIDDir: cfg.byIDDir, SysDir: cfg.sysDir, Identity: mode,
		StateDir: identityStateDir(cfg),
		Context: func(ctx context.Context) (*servercontext.Context, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			sc, err := readServerContext(ctx, cfg.contextDev)
			if err == nil && sc.UUID != nodeID {
				// --node-id names another server (a simulator's): this
				// context lists another server's drives.
				return nil, fmt.Errorf("the server context on %s is of server %s, not of this node %s", cfg.contextDev, sc.UUID, nodeID)
			}
			return sc, err
		},
	}, nil
}

// identityStateDir: --identity-state-dir, else beside the CSI socket (a
// host directory in the chart, so records survive a plugin restart).
func identityStateDir(cfg config) string {
	if cfg.identityStateDir != "" {
		return cfg.identityStateDir
	}
	if network, addr, err := driver.ParseEndpoint(cfg.endpoint); err == nil && network == "unix" {
		return filepath.Join(filepath.Dir(addr), "identity")
	}
	return device.DefaultStateDir
}

// reportIdentity logs the identity mode and keeps the metric current until
// the mode is known: detection waits for a disk and the server context.
func reportIdentity(ctx context.Context, f *device.VirtioFinder, metric func(string)) {
	var last device.Mode = "-"
	for {
		mode, detail := f.Mode(ctx)
		if mode != last {
			klog.InfoS("Drive identity mode", "mode", mode, "evidence", detail)
			if metric != nil {
				metric(string(mode))
			}
			last = mode
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(30 * time.Second):
		}
	}
}
