package engine

import (
	"errors"
	"fmt"
)

// Error codes. HTTP maps them to statuses in one table; callers branch on
// codes, never on message text.
const (
	EINVALID      = "invalid"            // malformed input: 400
	EUNAUTHORIZED = "unauthorized"       // bad or missing signature or token: 401
	ENOTFOUND     = "not_found"          // 404
	ECONFLICT     = "conflict"           // the request contradicts stored data: 409
	ETOOLARGE     = "too_large"          // 413
	EUNAVAILABLE  = "unavailable"        // the store cannot commit now; retry: 503
	EINTERNAL     = "internal"           // a bug: 500
	EUNSUPPORTED  = "unsupported"        // wrong content type: 415
	EOVERLOADED   = "overloaded"         // too many webhooks in flight: 503
	ESHUTDOWN     = "shutting_down"      // the process is stopping: 503
	EMETHOD       = "method_not_allowed" // the route exists for other methods: 405
	EPROVIDER     = "provider_error"     // a provider's API gave no usable answer: 502
)

// Error is an error with a code a caller can act on and a message fit for
// the person who sent the request.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause, logged but never shown to a client.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with code and message around cause.
func Wrap(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// ErrorCode returns the code of err, EINTERNAL for a foreign error, "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-facing message of err. A foreign error's
// text is not shown: it may carry internals.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
