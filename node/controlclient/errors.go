package controlclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshinit/meshinit/meshapi"
)

// UnreachableError is a request that got no HTTP answer: the coordinator is
// down, the address is wrong, or the network is cut.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("coordinator %s unreachable: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// CertificateError is a coordinator whose TLS certificate this node does
// not trust (an unknown authority, another host's name, expired). Retrying
// cannot help until the configuration changes, so Register fails at once.
type CertificateError struct {
	URL string
	Err error
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("coordinator %s: its TLS certificate is not trusted: %v; if a private CA signed it, give that CA's PEM file in MESH_COORDINATOR_CA", e.URL, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }

// KeyRefusal says why the coordinator refused an auth key: "expired",
// "revoked", "used" (a one-off key already registered its node) or
// "invalid" (no such key). ok is false when err is not a key refusal.
func KeyRefusal(err error) (reason string, ok bool) {
	var e *meshapi.Error
	if !errors.As(err, &e) {
		return "", false
	}
	switch e.Code {
	case meshapi.ErrKeyExpired:
		return "expired", true
	case meshapi.ErrKeyRevoked:
		return "revoked", true
	case meshapi.ErrKeyUsed:
		return "used", true
	case meshapi.ErrKeyInvalid:
		return "invalid", true
	}
	return "", false
}

// IsLoggedOut reports whether err says this node no longer exists or may
// no longer use the mesh (logged out, expired or deleted by an admin, or
// collected): retrying cannot help.
func IsLoggedOut(err error) bool {
	var e *meshapi.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == meshapi.ErrLoggedOut || e.Code == meshapi.ErrUnauthorized || e.Code == meshapi.ErrForbidden
}

// retryable reports whether a failed call may succeed if tried again:
// transport failures and server-side (5xx) errors.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var u *UnreachableError
	if errors.As(err, &u) {
		return true
	}
	var e *meshapi.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == 429
	}
	return false
}
