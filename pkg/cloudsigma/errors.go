package cloudsigma

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error types documented by the API (manual, chapter "Errors").
const (
	ErrTypeValidation  = "validation"
	ErrTypeNotExist    = "notexist"
	ErrTypeBackend     = "backend"
	ErrTypePermission  = "permission"
	ErrTypeDatabase    = "database"
	ErrTypeConcurrency = "concurrency"
	ErrTypeBilling     = "billing"
	ErrTypePayment     = "payment"
)

// ErrorItem is one element of the error array the API returns.
type ErrorItem struct {
	Type    string  `json:"error_type"`
	Message string  `json:"error_message"`
	Point   *string `json:"error_point"`
}

// Error is a failed API call: the HTTP status, the first documented error
// item (the API may return several; all are kept), and the request id that
// CloudSigma support asks for.
type Error struct {
	StatusCode int
	Type       string
	Message    string
	Point      string
	RequestID  string
	Method     string
	Path       string
	Items      []ErrorItem
	// RetryAfter is the wait a 429 or 503 asked for (Retry-After), zero
	// when it named none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudsigma: %s %s: %d", e.Method, e.Path, e.StatusCode)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Point != "" {
		b.WriteString(" (" + e.Point + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for _, it := range e.Items[min(1, len(e.Items)):] {
		b.WriteString("; " + it.Type + ": " + it.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request id " + e.RequestID + "]")
	}
	return b.String()
}

// decodeError builds an *Error from a non-2xx response body. It never fails:
// a body that is not the documented array (a proxy's HTML page, truncated
// JSON, a single object) still yields an error carrying the status and a
// trimmed excerpt of the body.
// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		return max(0, time.Duration(n)*time.Second)
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

func decodeError(status int, body []byte, requestID, method, path string) *Error {
	e := &Error{StatusCode: status, RequestID: requestID, Method: method, Path: path}
	var items []ErrorItem
	if err := json.Unmarshal(body, &items); err != nil {
		var one ErrorItem
		if err := json.Unmarshal(body, &one); err == nil && (one.Type != "" || one.Message != "") {
			items = []ErrorItem{one}
		}
	}
	e.Items = items
	if len(items) > 0 {
		e.Type = items[0].Type
		e.Message = items[0].Message
		if items[0].Point != nil {
			e.Point = *items[0].Point
		}
	} else {
		e.Message = excerpt(body)
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
	}
	return e
}

func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func matches(err error, status int, types ...string) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	if e.StatusCode == status {
		return true
	}
	for _, t := range types {
		if e.Type == t {
			return true
		}
	}
	return false
}

// IsNotFound: the object does not exist (404 or error_type notexist).
func IsNotFound(err error) bool { return matches(err, http.StatusNotFound, ErrTypeNotExist) }

// IsConcurrency: a conflicting concurrent operation; the call should be
// retried (503 or error_type concurrency).
func IsConcurrency(err error) bool {
	return matches(err, http.StatusServiceUnavailable, ErrTypeConcurrency)
}

// IsPermission: credentials valid but the operation is not allowed (403),
// e.g. resizing a drive mounted on a running server.
func IsPermission(err error) bool {
	return matches(err, http.StatusForbidden, ErrTypePermission) && !matches(err, http.StatusUnauthorized) && !matches(err, http.StatusTooManyRequests)
}

// IsValidation: the request was malformed or a value out of range (400).
func IsValidation(err error) bool { return matches(err, http.StatusBadRequest, ErrTypeValidation) }

// IsUnauthorized: bad or missing credentials (401).
func IsUnauthorized(err error) bool { return matches(err, http.StatusUnauthorized) }

// IsPayment: not enough funds, or a billing problem (402, billing, payment).
func IsPayment(err error) bool {
	return matches(err, http.StatusPaymentRequired, ErrTypeBilling, ErrTypePayment)
}

// StatusError is returned by waiters when an object lands in a state from
// which the awaited state cannot be reached (for example `unavailable`).
type StatusError struct {
	Kind, UUID, Status string
	Want               []string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("cloudsigma: %s %s is %q, wanted one of %v", e.Kind, e.UUID, e.Status, e.Want)
}

// IsUnavailable reports whether err says an object landed in `unavailable`.
func IsUnavailable(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == StatusUnavailable
}
