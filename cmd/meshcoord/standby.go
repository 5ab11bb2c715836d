package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// switchable is an http.Handler whose handler can be replaced while it
// serves: a standby answers on its listeners from the start, and the same
// servers carry the coordinator once it is active.
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

// standbyPoll is how often a standby tries to take the database over, and
// standbyPatience how long the active server must have been silent first
// (it records that it is alive every second; after a restart of the
// database it retakes its lock within a tenth of a second).
const (
	standbyPoll     = 500 * time.Millisecond
	standbyPatience = 10 * time.Second
)

// waitActive opens the PostgreSQL database db as soon as no other
// meshcoord holds it (the holder stopped or died: its lock goes with its
// session) and the holder has been silent for standbyPatience, retrying
// while the database is unreachable. It returns the store, or ctx's error.
func waitActive(ctx context.Context, db string, log *slog.Logger) (store.Store, error) {
	t := time.NewTicker(standbyPoll)
	defer t.Stop()
	var last string
	for {
		st, err := store.OpenPostgresStandby(ctx, db, log, standbyPatience)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, store.ErrInUse) && err.Error() != last {
			log.Warn("standby: the database is not reachable; retrying", "err", err)
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func writeJSONBody(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // our own types: they always marshal
	w.Write(append(b, '\n'))
}

// fencedOf returns the channel that closes when another server took the
// store's database over (never, for a store without an owner).
func fencedOf(st store.Store) <-chan struct{} {
	if f, ok := st.(interface{ Fenced() <-chan struct{} }); ok {
		return f.Fenced()
	}
	return nil
}
