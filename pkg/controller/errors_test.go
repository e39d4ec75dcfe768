package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/inflight"
	"google.golang.org/grpc/codes"
)

func TestCloudCode(t *testing.T) {
	apiErr := func(status int, typ string) error {
		return fmt.Errorf("wrapped: %w", &cloudsigma.Error{StatusCode: status, Type: typ})
	}
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{apiErr(404, cloudsigma.ErrTypeNotExist), codes.NotFound},
		{apiErr(400, cloudsigma.ErrTypeValidation), codes.InvalidArgument},
		{apiErr(401, ""), codes.Unauthenticated},
		{apiErr(402, cloudsigma.ErrTypePayment), codes.ResourceExhausted},
		{apiErr(400, cloudsigma.ErrTypeBilling), codes.ResourceExhausted},
		{apiErr(403, cloudsigma.ErrTypePermission), codes.PermissionDenied},
		{&cloudsigma.Error{StatusCode: 403, Type: cloudsigma.ErrTypePermission, Message: "Snapshot limit reached"}, codes.ResourceExhausted},
		{apiErr(503, cloudsigma.ErrTypeConcurrency), codes.Unavailable},
		{apiErr(500, cloudsigma.ErrTypeBackend), codes.Unavailable},
		{apiErr(http.StatusTooManyRequests, ""), codes.Unavailable},
		{&cloudsigma.StatusError{Kind: "drive", Status: cloudsigma.StatusUnavailable}, codes.Internal},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", attach.ErrNoFreeChannel), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", attach.ErrNotConfirmed), codes.Unavailable},
		{fmt.Errorf("x: %w", cloudsigma.ErrTooLarge), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", inflight.ErrBusy), codes.Aborted},
		{errors.New("connection reset"), codes.Unavailable},
	} {
		if got := cloudCode(tc.err); got != tc.want {
			t.Errorf("cloudCode(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
