// Package coordinatortest runs a real coordinator in process for tests of
// code that talks to it, in the manner of net/http/httptest: the node API
// and the admin API each on a loopback HTTP server, the store a real SQLite
// file in the test's temp dir, everything closed when the test ends.
//
//	coord := coordinatortest.NewServer(t, coordinator.Config{})
//	key := coord.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
//	// ... point a node or a client at coord.URL with key.Key ...
//	for _, e := range coord.Events() { ... }
//
// It is for unit tests outside the coordinator package (whose own tests
// cannot import it: it imports coordinator). Integration suites that need
// the real meshcoord binary use integration/internal/coordtest instead.
package coordinatortest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// adminTimeout bounds each admin call of the helpers: an in-process
// coordinator answers at once, so running into it means it hangs.
const adminTimeout = 10 * time.Second

// Server is a coordinator serving on loopback.
type Server struct {
	// URL is the node API's base URL (http://127.0.0.1:port), what a node
	// is given as its coordinator.
	URL string
	// AdminURL is the admin API's base URL. It serves the admin handler as
	// the admin socket does, so no token is needed.
	AdminURL string
	// Admin is an admin API client for AdminURL.
	Admin *adminclient.Client
	// Coordinator is the server itself.
	Coordinator *coordinator.Server
	// Relay is the packet relay served next to the node API at /v1/relay.
	Relay *relay.Server

	t     testing.TB
	api   *httptest.Server
	admin *httptest.Server
}

// NewServer starts a coordinator with cfg on a new SQLite database in
// t.TempDir() and serves it on loopback until the test ends (or Close).
// A nil cfg.Logger logs the coordinator's warnings and errors with t.Log,
// so they show with the test's output when it fails.
func NewServer(t testing.TB, cfg coordinator.Config) *Server {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "coord.db"))
	if err != nil {
		t.Fatalf("coordinatortest: opening the store: %v", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := coordinator.New(ctx, cfg, st)
	if err != nil {
		st.Close()
		t.Fatalf("coordinatortest: starting the coordinator: %v", err)
	}
	rl, err := relay.ForCoordinator(srv, relay.Config{Log: cfg.Logger})
	if err != nil {
		srv.Close()
		t.Fatalf("coordinatortest: starting the relay: %v", err)
	}
	s := &Server{
		Coordinator: srv,
		Relay:       rl,
		t:           t,
		api:         httptest.NewServer(rl.Handler(srv.Handler())),
		admin:       httptest.NewServer(srv.AdminHandler()),
	}
	s.URL, s.AdminURL = s.api.URL, s.admin.URL
	// The admin handler served here is the socket's, which asks for no
	// token; the client wants one to send all the same.
	s.Admin, err = adminclient.NewHTTP(s.AdminURL, "unused-by-the-socket-handler", nil)
	if err != nil {
		s.Close()
		t.Fatalf("coordinatortest: admin client: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the coordinator, which ends its map streams, and then the
// HTTP servers, dropping client connections still open. It is called when
// the test ends; calling it earlier (a coordinator going away) is fine.
func (s *Server) Close() {
	if s.Coordinator == nil {
		return
	}
	s.Relay.Close()
	if err := s.Coordinator.Close(); err != nil {
		s.t.Errorf("coordinatortest: closing the coordinator: %v", err)
	}
	s.api.CloseClientConnections()
	s.api.Close()
	s.admin.Close()
	s.Coordinator = nil
}

// CreateKey creates an auth key, failing the test if that fails.
func (s *Server) CreateKey(req meshapi.KeyCreateRequest) *meshapi.KeyCreateResponse {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	k, err := s.Admin.CreateKey(ctx, req)
	if err != nil {
		s.t.Fatalf("coordinatortest: creating a key: %v", err)
	}
	return k
}

// Nodes lists the registered nodes, failing the test if that fails.
func (s *Server) Nodes() []meshapi.Node {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ns, err := s.Admin.Nodes(ctx)
	if err != nil {
		s.t.Fatalf("coordinatortest: listing nodes: %v", err)
	}
	return ns
}

// Events returns the events so far, oldest first, failing the test if
// reading them fails.
func (s *Server) Events() []meshapi.Event {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var evs []meshapi.Event
	err := s.Admin.Events(ctx, 0, false, func(e meshapi.Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		s.t.Fatalf("coordinatortest: reading events: %v", err)
	}
	return evs
}

// testWriter hands each log line to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
