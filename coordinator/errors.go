package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// apiError is an answer the client must see: an HTTP status, a code from
// meshapi, and a message that says what went wrong and what to do. It is
// the type the mesh's rules answer with.
type apiError = meshapi.Error

func errorf(status int, code meshapi.ErrorCode, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, meshapi.ErrInvalidRequest, format, args...)
}

func notFound(format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, meshapi.ErrNotFound, format, args...)
}

// unavailable answers a change the store has not taken: the client may
// retry. It says why only when the cause is the coordinator's own (a
// shutdown, a timeout): a database's error text (SQL, table and constraint
// names, file paths) is logged where the write failed and never sent to a
// node, which need not know how the coordinator stores things.
func unavailable(err error) *apiError {
	return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal, "the coordinator could not store the change: %s; retry later", publicCause(err))
}

// ownCause is an error the coordinator made itself, fit for a client.
type ownCause string

func (c ownCause) Error() string { return string(c) }

// publicCause is what a client is told of err.
func publicCause(err error) string {
	var own ownCause
	switch {
	case errors.As(err, &own):
		return own.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "the database did not take it in time"
	case errors.Is(err, context.Canceled):
		return "the request ended before the database took it"
	default:
		return "the database refused the write (the coordinator's log says why)"
	}
}

// decodeError maps a meshapi.Decode failure to its answer.
func decodeError(err error) *apiError {
	if errors.Is(err, meshapi.ErrBodyRead) {
		// The body did not arrive in time (an overloaded server reads
		// slowly too) or the connection broke: nothing is wrong with the
		// request, so the answer must not be final.
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal, "%v: retry", err)
	}
	if errors.Is(err, meshapi.ErrBodyTooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, meshapi.ErrTooLarge, "request body too large: the limit is %d bytes", meshapi.MaxBodyBytes)
	}
	return badRequest("%v", err)
}

// bodyReadTimeout bounds reading a request body: bodies are small, and a
// client that trickles one must not hold a goroutine forever.
var bodyReadTimeout = 10 * time.Second // a variable for the tests

// decodeBody decodes a required JSON body strictly, within the size limit
// and the read timeout.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	return meshapi.Decode(r.Body, meshapi.MaxBodyBytes, v)
}

// decodeOptional decodes a body that may be absent (empty or blank): v is
// left as is then. A body that is present is decoded strictly.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) *apiError {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	data, err := io.ReadAll(io.LimitReader(r.Body, meshapi.MaxBodyBytes+1))
	if err != nil {
		return decodeError(fmt.Errorf("%w: %w", meshapi.ErrBodyRead, err))
	}
	if len(data) > meshapi.MaxBodyBytes {
		return decodeError(meshapi.ErrBodyTooLarge)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := meshapi.DecodeBytes(data, v); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, meshapi.ErrorBody{Error: meshapi.Error{Code: e.Code, Message: e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types get here; they always marshal.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the answer failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
