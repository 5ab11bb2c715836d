package controlclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

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

// noAnswer is the error of a request to a coordinator that got no HTTP
// answer: a *CertificateError when the TLS certificate was not trusted,
// else an *UnreachableError.
func noAnswer(req *http.Request, err error) error {
	if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
		return &CertificateError{URL: baseOf(req), Err: cv}
	}
	return &UnreachableError{URL: baseOf(req), Err: err}
}

// CertificateError is a coordinator whose TLS certificate this node does
// not trust (an unknown authority, another host's name, expired). Retrying
// cannot help until the configuration changes, so Register fails at once;
// a map stream moves to the next replica, if there is one, and retries.
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

// ForeignAnswerError is an HTTP error answer without the coordinator's
// error body: an ingress, a WAF, a load balancer or a proxy in front of
// meshcoord answered instead of it (a 401 from an auth proxy, a 403 from a
// WAF, a 404 or 502 from an ingress whose backend is not ready). It never
// means the node or its key was refused: only the coordinator says that.
// Calls retry it with backoff.
type ForeignAnswerError struct {
	URL    string
	Status int
	Body   string // the start of the body, for the log
}

func (e *ForeignAnswerError) Error() string {
	return fmt.Sprintf("HTTP %d from %s without the coordinator's error body (an ingress, WAF or proxy in front of meshcoord?): %q",
		e.Status, e.URL, e.Body)
}

// IsLoggedOut reports whether err is the coordinator's own answer that
// this node no longer exists or may no longer use the mesh: logged_out
// (logged out, expired by an admin) or unauthorized (the node secret is
// unknown: deleted, collected, replaced). Retrying cannot help then. A 401
// or 403 from anything in front of the coordinator (ForeignAnswerError) is
// never that.
func IsLoggedOut(err error) bool {
	var e *meshapi.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == meshapi.ErrLoggedOut || e.Code == meshapi.ErrUnauthorized
}

// retryable reports whether a call that failed with err may succeed if
// tried again: transport failures of any kind (refused, reset, a connect
// or TLS handshake that timed out, no answer in time), server-side (5xx)
// and rate-limit (429) answers, and answers that did not come from the
// coordinator. The caller checks its own ctx first: an error caused by the
// caller giving up is not retried, whatever it wraps.
func retryable(err error) bool {
	var u *UnreachableError
	var f *ForeignAnswerError
	if errors.As(err, &u) || errors.As(err, &f) {
		return true
	}
	var e *meshapi.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == 429
	}
	return false
}
