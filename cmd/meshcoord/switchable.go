package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/meshinit/meshinit/meshapi"
)

// switchable is an http.Handler whose handler can be replaced while it
// serves: the listeners answer (503) from the start, while the state
// loads, and the same servers carry the coordinator once it is loaded.
type switchable struct{ h atomic.Pointer[http.Handler] }

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *switchable) set(h http.Handler) { s.h.Store(&h) }

func newSwitchable(h http.Handler) *switchable {
	s := &switchable{}
	s.set(h)
	return s
}

// notServing answers every request with a retryable 503 in the
// coordinator's own error body (so a node with several coordinators moves
// to the next one), and /healthz with {"status": status}.
func notServing(status, message string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.URL.Path == meshapi.PathHealth {
			writeJSONBody(w, map[string]string{"status": status})
			return
		}
		writeJSONBody(w, meshapi.ErrorBody{Error: meshapi.Error{Code: meshapi.ErrInternal, Message: message}})
	})
}

func writeJSONBody(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // our own types: they always marshal
	w.Write(append(b, '\n'))
}
