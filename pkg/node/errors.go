package node

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
)

// Kinds of local failure. Code below wraps one of them (failf) or returns a
// device error; toStatus is the only place that picks gRPC codes.
var (
	errInvalid      = errors.New("invalid argument")
	errNotFound     = errors.New("not found")
	errPrecondition = errors.New("failed precondition")
	errConflict     = errors.New("conflicts with the existing mount")
	errUnavailable  = errors.New("not ready")
	errOutOfRange   = errors.New("capacity out of range")
)

var codeOf = []struct {
	kind error
	code codes.Code
}{
	{errInvalid, codes.InvalidArgument},
	{errNotFound, codes.NotFound},
	{errPrecondition, codes.FailedPrecondition},
	{errConflict, codes.AlreadyExists},
	{inflight.ErrBusy, codes.Aborted},
	{errUnavailable, codes.Unavailable},
	{errOutOfRange, codes.OutOfRange},
	// The kubelet retries all of these with backoff: a drive that is not
	// (yet) visible is NotFound; one we refuse to trust needs a human.
	{device.ErrNotFound, codes.NotFound},
	{device.ErrIdentity, codes.NotFound},
	{device.ErrAmbiguous, codes.FailedPrecondition},
	{device.ErrSize, codes.FailedPrecondition},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// toStatus turns a local error into a gRPC status; unknown errors are
// Internal.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, c := range codeOf {
		if errors.Is(err, c.kind) {
			return status.Error(c.code, err.Error())
		}
	}
	var me mount.MountError
	if errors.As(err, &me) {
		switch me.Type {
		case mount.UnformattedReadOnly, mount.HasFilesystemErrors, mount.FilesystemMismatch:
			return status.Error(codes.FailedPrecondition, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// failf wraps kind with a message.
func failf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
