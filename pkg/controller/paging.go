package controller

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The CSI list calls page with an opaque token; ours is an offset into the
// list, which for volumes and snapshots is also the API's own offset. Every
// rule about tokens lives here.

// defaultPageSize bounds one API page when the caller asks for no limit but
// starts at an offset.
const defaultPageSize = 1000

// page is where one list response starts, and how long it may be (0: all).
type page struct {
	offset, max int
}

// readPage checks a list request's token and max_entries. A token we did
// not issue is Aborted, as the spec asks; a negative max_entries is invalid.
func readPage(token string, maxEntries int32) (page, error) {
	if maxEntries < 0 {
		return page{}, status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	p := page{max: int(maxEntries)}
	if token == "" {
		return p, nil
	}
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 {
		return page{}, status.Errorf(codes.Aborted, "invalid starting token %q", token)
	}
	p.offset = n
	return p, nil
}

// limit is the API page size to ask for.
func (p page) limit() int {
	if p.max == 0 {
		return defaultPageSize
	}
	return p.max
}

// whole: the caller wants the list from its start without a limit.
func (p page) whole() bool { return p.offset == 0 && p.max == 0 }

// check refuses a token past the end of a list of total entries (Aborted:
// the list changed since the token was issued).
func (p page) check(total int, what string) error {
	if p.offset > 0 && p.offset >= total {
		return status.Errorf(codes.Aborted, "starting token %d is past the end of the list (%d %s)", p.offset, total, what)
	}
	return nil
}

// nextToken follows a response of n entries out of total; "" at the end.
func (p page) nextToken(n, total int) string {
	if next := p.offset + n; n > 0 && next < total {
		return strconv.Itoa(next)
	}
	return ""
}

// cut is the page of a list held whole.
func cut[T any](p page, all []T) []T {
	out := all[min(p.offset, len(all)):]
	if p.max > 0 && p.max < len(out) {
		out = out[:p.max]
	}
	return out
}

// listStart reads a list request's page and finds the cluster tag that marks
// this cluster's drives ("" when none exists yet).
func (c *Service) listStart(ctx context.Context, token string, maxEntries int32) (page, string, error) {
	p, err := readPage(token, maxEntries)
	if err != nil {
		return page{}, "", err
	}
	tag, err := c.tagUUID(ctx, c.clusterTag(), false)
	return p, tag, err
}
