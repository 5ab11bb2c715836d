package meshapi

import "fmt"

// ErrorCode is the machine-readable part of an error answer.
type ErrorCode string

const (
	ErrInvalidRequest ErrorCode = "invalid_request" // 400: malformed body or bad value
	ErrTooLarge       ErrorCode = "too_large"       // 413
	ErrUnauthorized   ErrorCode = "unauthorized"    // 401: missing or unknown secret/token
	ErrForbidden      ErrorCode = "forbidden"       // 403
	ErrNotFound       ErrorCode = "not_found"       // 404
	ErrConflict       ErrorCode = "conflict"        // 409 (name taken, say)
	ErrKeyInvalid     ErrorCode = "key_invalid"     // 401: no such key
	ErrKeyExpired     ErrorCode = "key_expired"     // 401
	ErrKeyRevoked     ErrorCode = "key_revoked"     // 401
	ErrKeyUsed        ErrorCode = "key_used"        // 401: one-off key already used
	ErrLoggedOut      ErrorCode = "logged_out"      // 401: the node logged out or was expired
	ErrPoolExhausted  ErrorCode = "pool_exhausted"  // 503: no free address
	ErrInternal       ErrorCode = "internal"        // 500
	// ErrPolicyInvalid: 400, the policy document does not parse or its
	// tests fail; the message names the line or the failing test.
	ErrPolicyInvalid ErrorCode = "policy_invalid"
)

// ErrorBody is the JSON body of every non-2xx answer.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is a protocol error: what went wrong and what to do about it.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	// Status is the HTTP status the error came with; not on the wire.
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}
