package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the identity evidence (identity.go), coded in cloudCode.
var (
	// errIndistinct: the attach waits in the exclusive window.
	errIndistinct = errors.New("attach waits for an indistinguishable drive")
	// errEvidence: the drive's content could not be read for the node.
	errEvidence = errors.New("content evidence not read")
)

// cloudCode is the one table that turns cloud errors into gRPC codes. The
// sidecars retry Unavailable, Aborted and DeadlineExceeded with backoff, so
// transient trouble must land there and only there.
func cloudCode(err error) codes.Code {
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	apiErr, isAPI := cloudsigma.AsError(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, inflight.ErrBusy):
		return codes.Aborted
	case errors.Is(err, cloudsigma.ErrTooLarge):
		return codes.ResourceExhausted // a bound of ours: a flag raises it
	case errors.Is(err, attach.ErrNotConfirmed):
		return codes.Unavailable // the server may take it on a retry
	case errors.Is(err, attach.ErrNoFreeChannel):
		return codes.ResourceExhausted
	case errors.Is(err, errIndistinct):
		return codes.Unavailable // the attacher retries; the window closes
	case errors.Is(err, errEvidence) && !isAPI:
		return codes.Unavailable // the download host did not answer
	case cloudsigma.IsUnavailable(err):
		return codes.Internal
	case !isAPI:
		var se *cloudsigma.StatusError
		if errors.As(err, &se) {
			return codes.FailedPrecondition
		}
		return codes.Unavailable // transport failures
	case cloudsigma.IsNotFound(err):
		return codes.NotFound
	case cloudsigma.IsUnauthorized(err):
		return codes.Unauthenticated
	case cloudsigma.IsPayment(err):
		return codes.ResourceExhausted
	case cloudsigma.IsConcurrency(err):
		return codes.Unavailable
	case cloudsigma.IsPermission(err) && isLimit(apiErr):
		// CloudSigma answers account limits with 403 "operation not
		// allowed" too; those are exhausted resources, not permissions.
		return codes.ResourceExhausted
	case cloudsigma.IsPermission(err):
		return codes.PermissionDenied
	case cloudsigma.IsValidation(err):
		return codes.InvalidArgument
	case apiErr.StatusCode == http.StatusTooManyRequests:
		return codes.Unavailable
	case apiErr.StatusCode >= 500:
		return codes.Unavailable
	}
	return codes.Internal
}

func isLimit(e *cloudsigma.Error) bool {
	msg := strings.ToLower(e.Message)
	return strings.Contains(msg, "limit") || strings.Contains(msg, "quota") || strings.Contains(msg, "exceed")
}

// cloudError wraps err in a gRPC status with the code from cloudCode. The
// message carries the API's request id (in err's text) and never
// credentials: the client does not put them in errors.
func cloudError(err error, what string) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	return status.Errorf(cloudCode(err), "%s: %v", what, err)
}

// inProgress keeps every error after the drive exists retryable. On a final
// code the external-provisioner gives up without ever learning the drive's
// ID, so nothing would delete it; on Unavailable it calls again, finds the
// drive by name, and finishes it (or deletes it once the claim is gone).
func inProgress(err error, driveID string) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted:
		return err
	}
	return status.Errorf(codes.Unavailable, "drive %s exists but is not ready as a volume yet (a retry continues it): %s", driveID, status.Convert(err).Message())
}

// resizeError: CloudSigma answers 403 when a drive mounted on a running
// server is resized; the volume is in use (FailedPrecondition: offline
// expansion waits for the detach), not a missing permission.
func resizeError(err error, id string) error {
	if cloudsigma.IsPermission(err) {
		return status.Errorf(codes.FailedPrecondition, "CloudSigma refused to resize drive %s: %v", id, err)
	}
	return cloudError(err, "resizing drive")
}

// attachError: a 400 on the server's drives list typically means the drive
// just got attached elsewhere, not that the caller's arguments are wrong.
func attachError(err error, node, volID string) error {
	if cloudsigma.IsValidation(err) {
		return status.Errorf(codes.FailedPrecondition, "server %s refused drive %s: %v", node, volID, err)
	}
	return cloudError(err, "attaching drive")
}

// snapshotError: CloudSigma answers a reached snapshot limit with the same
// 403 as a refusal; limitReached (from the capabilities) tells them apart.
func snapshotError(err error, limitReached bool, driveID string) error {
	if cloudsigma.IsPermission(err) && limitReached {
		return status.Errorf(codes.ResourceExhausted, "snapshot limit reached for drive %s: %v", driveID, err)
	}
	return cloudError(err, "creating snapshot")
}

// incompatiblePublish: "Volume published but is incompatible", a second
// publish at the same node with another capability or readonly flag.
func incompatiblePublish(volID, node, got, want string) error {
	return status.Errorf(codes.AlreadyExists, "drive %s is published at node %s as %q, incompatible with the requested %q",
		volID, node, strings.TrimPrefix(got, node+"/"), strings.TrimPrefix(want, node+"/"))
}
