package main

import (
	"context"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/node"
	"github.com/cloudsigma-csi/driver/pkg/servercontext"
)

// newNode builds the node service. The node ID is the CloudSigma server UUID:
// --node-id, else the server context on the serial port, else an error (a
// node that cannot name its server cannot be attached to).
func newNode(ctx context.Context, cfg config, location string) (csi.NodeServer, error) {
	id := cfg.nodeID
	if id == "" {
		readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		if id, err = servercontext.ReadServerUUID(readCtx, cfg.contextDev); err != nil {
			return nil, fmt.Errorf("node ID: --node-id is empty and the server context on %s gave no server UUID: %w", cfg.contextDev, err)
		}
		klog.InfoS("Node ID read from the server context", "nodeID", id, "device", cfg.contextDev)
	}
	maxVolumes := cfg.maxVolumes // at most cfg.channels.MaxVolumes(): config.validate
	if maxVolumes == 0 {
		maxVolumes = cfg.channels.MaxVolumes()
	}
	return node.New(node.Config{
		NodeID:            id,
		Location:          location,
		MaxVolumesPerNode: int64(maxVolumes),
		Finder:            &device.VirtioFinder{ByIDDir: cfg.byIDDir, SysDir: cfg.sysDir},
		SysDir:            cfg.sysDir,
	})
}
