package cloudsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// apiError is one entry of the documented error array (manual ch. 4) plus
// the HTTP status it travels with.
type apiError struct {
	Status  int
	Type    string
	Message string
	Point   string // "" is sent as null
	Allow   string // Allow header of a 405
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

func newErr(status int, typ, point, format string, args ...any) *apiError {
	return &apiError{Status: status, Type: typ, Point: point, Message: fmt.Sprintf(format, args...)}
}

// errMethod is the documented 405 for a method the URL does not allow.
func errMethod(method string, allowed ...string) *apiError {
	e := newErr(http.StatusMethodNotAllowed, "validation", "", "Method %s is not allowed here", method)
	e.Allow = strings.Join(allowed, ", ")
	return e
}

func errValidation(point, format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, "validation", point, format, args...)
}

func errNotExist(format string, args ...any) *apiError {
	return newErr(http.StatusNotFound, "notexist", "", format, args...)
}

func errPermission(format string, args ...any) *apiError {
	return newErr(http.StatusForbidden, "permission", "", format, args...)
}

// errConcurrency is the manual's "two simultaneous conflicting operations,
// should be retried" answer: 503 with error_type concurrency.
func errConcurrency(format string, args ...any) *apiError {
	return newErr(http.StatusServiceUnavailable, "concurrency", "", format, args...)
}

// errorTypeFor picks the error_type an injected or generic failure of this
// status carries.
func errorTypeFor(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusLengthRequired:
		return "validation"
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		return "permission"
	case http.StatusPaymentRequired:
		return "payment"
	case http.StatusNotFound:
		return "notexist"
	case http.StatusServiceUnavailable:
		return "concurrency"
	default:
		return "backend"
	}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Allow != "" {
		w.Header().Set("Allow", e.Allow)
	}
	var point any
	if e.Point != "" {
		point = e.Point
	}
	writeJSON(w, e.Status, []map[string]any{{
		"error_type":    e.Type,
		"error_message": e.Message,
		"error_point":   point,
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`[{"error_type":"backend","error_message":"encoding failed","error_point":null}]`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeNoContent answers a DELETE the way the manual's examples show: 204
// with a text/html content type and no body.
func writeNoContent(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNoContent)
}
