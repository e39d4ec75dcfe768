package main

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func newNode(ctx context.Context, cfg config, location string) (csi.NodeServer, error) {
	return nil, errors.New("node service not wired yet")
}
