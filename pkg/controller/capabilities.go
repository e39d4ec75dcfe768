package controller

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/container-storage-interface/spec/lib/go/csi"
)

// multiNode reports a capability for several servers at once: a drive with
// allow_multimount, attached to each (params.CheckAccessMode allows it for
// raw block volumes only).
func multiNode(caps ...*csi.VolumeCapability) bool {
	for _, c := range caps {
		if c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
			return true
		}
	}
	return false
}

// malformedCapabilities reports a capability that lacks what the spec
// marks REQUIRED (the access mode) or "MUST be specified" (the access
// type): a request error, unlike a well-formed capability the driver does
// not support.
func malformedCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return fmt.Errorf("volume capabilities are required")
	}
	for _, c := range caps {
		switch {
		case c.GetAccessMode() == nil:
			return fmt.Errorf("access mode is required")
		case c.GetBlock() == nil && c.GetMount() == nil:
			return fmt.Errorf("access type (mount or block) is required")
		}
	}
	return nil
}

// checkCapabilities returns why the capabilities cannot be served, or nil.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if err := malformedCapabilities(caps); err != nil {
		return err
	}
	for _, c := range caps {
		if err := params.CheckAccessMode(c); err != nil {
			return err
		}
		if _, ok := params.FSType(c.GetMount().GetFsType()); !ok {
			return fmt.Errorf("filesystem %q is not supported (supported: %s)", c.GetMount().GetFsType(), strings.Join(params.FSTypes, ", "))
		}
	}
	return nil
}

// storageTypes lists what capabilities offer, for error messages.
func storageTypes(caps *cloudsigma.Capabilities) string {
	var names []string
	for k := range caps.Drives {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
