package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/controller"
	"github.com/cloudsigma-csi/driver/pkg/node"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/servercontext"
)

// readServerContext reads the server context; tests replace it.
var readServerContext = servercontext.ReadContext

// Time allowed for reading the server context: without --node-id the node
// cannot start without it; with --node-id only the attach limit uses it, so
// a server without one (a test machine) must not hold the start up long.
const (
	contextTimeout      = 30 * time.Second
	limitContextTimeout = 5 * time.Second
)

// newNode builds the node service. The node ID is the CloudSigma server UUID:
// --node-id, else the server context on the serial port, else an error (a
// node that cannot name its server cannot be attached to). The attach limit
// leaves out the data drives attached to the server by other means, which
// the context lists too (nodeLimit).
func newNode(ctx context.Context, cfg config, location string) (csi.NodeServer, error) {
	id := cfg.nodeID
	var sc *servercontext.Context
	if id == "" {
		readCtx, cancel := context.WithTimeout(ctx, contextTimeout)
		var err error
		sc, err = readServerContext(readCtx, cfg.contextDev)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node ID: --node-id is empty and the server context on %s gave no server UUID: %w", cfg.contextDev, err)
		}
		id = sc.UUID
		klog.InfoS("Node ID read from the server context", "nodeID", id, "device", cfg.contextDev)
	} else {
		readCtx, cancel := context.WithTimeout(ctx, limitContextTimeout)
		var err error
		sc, err = readServerContext(readCtx, cfg.contextDev)
		cancel()
		switch {
		case err != nil:
			klog.InfoS("No server context: the attach limit counts no drives attached by other means",
				"device", cfg.contextDev, "err", err)
			sc = nil
		case sc.UUID != id:
			// --node-id names another server (a simulator's): this
			// server's drives are not that one's.
			klog.InfoS("The server context is of another server than --node-id: the attach limit counts no drives attached by other means",
				"nodeID", id, "contextUUID", sc.UUID)
			sc = nil
		}
	}
	maxVolumes, err := nodeLimit(cfg, sc)
	if err != nil {
		return nil, err
	}
	finder, err := nodeFinder(cfg, id)
	if err != nil {
		return nil, err
	}
	go reportIdentity(ctx, finder, onIdentityMode)
	return node.New(node.Config{
		NodeID:            id,
		Location:          location,
		MaxVolumesPerNode: int64(maxVolumes),
		Finder:            finder,
		SysDir:            cfg.sysDir,
	})
}

// nodeLimit is MaxVolumesPerNode: --max-volumes-per-node (default: the
// virtio channels less one for the boot drive), lowered to the channels the
// data drives attached by other means (sc, read at start; nil = unknown)
// leave free, so the scheduler never counts on a channel that is taken.
//
// None left is an error rather than a report: CSI cannot express "no
// volumes" (max_volumes_per_node 0 means no limit at all), and a node that
// can attach nothing should say so where the operator looks.
func nodeLimit(cfg config, sc *servercontext.Context) (int, error) {
	channels := cfg.channels.MaxVolumes()
	limit := cfg.maxVolumes
	if limit == 0 {
		limit = channels
	}
	if limit > channels {
		return 0, fmt.Errorf("--max-volumes-per-node %d exceeds the %d volumes the virtio channels can attach", limit, channels)
	}
	if sc == nil {
		return limit, nil
	}
	other := otherDataDrives(sc)
	free := max(channels-len(other), 0)
	var names []string
	for _, d := range other {
		name := d.Name
		if !d.Defined {
			name = "(undefined in the context)"
		}
		names = append(names, d.DriveUUID+" "+name+" at "+d.DevChannel)
	}
	if free == 0 {
		return 0, fmt.Errorf("no virtio channel is left for CSI volumes: %d data drives attached by other means (%s) take all %d channels "+
			"that the boot drive leaves; detach some, or raise --virtio-controllers/--virtio-units if the server has more, and restart the node plugin",
			len(other), strings.Join(names, "; "), channels)
	}
	if free < limit {
		limit = free
	}
	klog.InfoS("Attach limit", "maxVolumesPerNode", limit, "channelsForData", channels,
		"otherDataDrives", len(other), "drives", names)
	return limit, nil
}

// otherDataDrives lists the drives attached to the server that take a
// virtio channel and are neither its (first) boot drive, which the channel
// count already leaves out, nor a CSI volume: a drive carrying this
// driver's meta, or named like one (pvc-...). A drive the context gives
// only by URI cannot be told apart and counts as other: the safe side.
func otherDataDrives(sc *servercontext.Context) []servercontext.Drive {
	var out []servercontext.Drive
	bootSeen := false
	for _, d := range sc.Drives {
		switch {
		case d.Device == "ide": // IDE (a CD-ROM) takes no virtio channel
		case d.Boot && !bootSeen:
			bootSeen = true
		case d.Meta[controller.MetaDriver] == params.DriverName, strings.HasPrefix(d.Name, "pvc-"):
		default:
			out = append(out, d)
		}
	}
	return out
}
