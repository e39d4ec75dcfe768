package controller

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// listStart checks a list request's token and max_entries and finds the
// cluster tag that marks this cluster's drives ("" when none exists yet).
func (c *Service) listStart(ctx context.Context, token string, maxEntries int32) (offset int, tag string, err error) {
	if offset, err = parseToken(token); err != nil {
		return 0, "", err
	}
	if maxEntries < 0 {
		return 0, "", status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	tag, err = c.tagUUID(ctx, c.clusterTag(), false)
	return offset, tag, err
}

// parseToken reads a pagination token; a token we did not issue is Aborted,
// as the spec asks.
func parseToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(tok)
	if err != nil || n < 0 {
		return 0, status.Errorf(codes.Aborted, "invalid starting token %q", tok)
	}
	return n, nil
}
