package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// flakyStore is a SQLite store whose writes fail while failing is set, as a
// full or broken disk would make them.
type flakyStore struct {
	*store.SQLite
	failing atomic.Bool
}

func (f *flakyStore) Apply(ctx context.Context, ops []store.Op) error {
	if f.failing.Load() {
		return errors.New("disk failure (test)")
	}
	return f.SQLite.Apply(ctx, ops)
}

func health(t *testing.T, url string) (int, Health) {
	t.Helper()
	resp, err := http.Get(url + meshapi.PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

// TestStoreFailureAnswers503AndRecovers: while the store cannot be written,
// a registration, which must be stored before its answer, gets 503 and
// /healthz says failing. The node is made all the same (in memory, queued
// for the store): its retries, with the same node secret, get 503 while the
// store fails and then that same node, never a second one, and the one-off
// key counts one use (no "key used"). Once the store works again everything
// is stored and health recovers.
func TestStoreFailureAnswers503AndRecovers(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "coord.db")
	sq, err := store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{SQLite: sq}
	// The writer logs every failed retry; that is the behaviour under test,
	// not news for the test log.
	s, err := New(ctx, Config{CommitTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, fs)
	if err != nil {
		sq.Close()
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	admin := httptest.NewServer(s.AdminHandler())
	closed := false
	stop := func() {
		if !closed {
			closed = true
			s.Close()
			api.Close()
			admin.Close()
		}
	}
	defer stop()

	var key meshapi.KeyCreateResponse // one-off: a second use would be refused
	if status, er := do(t, "POST", admin.URL+meshapi.PathAdminKeys, "", meshapi.KeyCreateRequest{}, &key); status != http.StatusCreated {
		t.Fatalf("key while the store works: %d %+v", status, er)
	}

	fs.failing.Store(true)
	req := meshapi.RegisterRequest{AuthKey: key.Key, Hostname: "web", PublicKey: randomKey(), Secret: meshapi.NewNodeSecret()}
	for attempt := range 3 {
		status, er := do(t, "POST", api.URL+meshapi.PathRegister, "", req, nil)
		if status != http.StatusServiceUnavailable || er.Code != meshapi.ErrInternal {
			t.Fatalf("registration attempt %d with a failing store: %d %+v, want 503 internal", attempt, status, er)
		}
	}
	if status, h := health(t, api.URL); status != http.StatusServiceUnavailable || h.Status != "failing" || h.Store != "failing" {
		t.Fatalf("healthz with a failing store: %d %+v", status, h)
	}

	fs.failing.Store(false)
	eventually(t, 15*time.Second, "healthz recovers once the store works", func() bool {
		status, h := health(t, api.URL)
		return status == http.StatusOK && h.Status == "ok"
	})
	var reg meshapi.RegisterResponse
	if status, er := do(t, "POST", api.URL+meshapi.PathRegister, "", req, &reg); status != http.StatusOK {
		t.Fatalf("retry once the store works: %d %+v, want 200 with the node", status, er)
	}
	if reg.Node.ID != 1 || reg.Node.Name != "web" || reg.Secret != req.Secret {
		t.Fatalf("retry got %+v (secret kept: %v), want node 1 \"web\" and the same secret", reg.Node, reg.Secret == req.Secret)
	}
	if ms, status, er := openStream(t, api.URL, reg.Secret, ""); ms == nil {
		t.Fatalf("the node's secret does not open its stream: %d %+v", status, er)
	} else {
		ms.close()
	}
	// The write that failed was kept and retried: after a clean stop the
	// file holds the node and the key's use.
	stop()
	sq, err = store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	snap, err := sq.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 1 || snap.Nodes[0].Name != "web" || len(snap.Keys) != 1 || snap.Keys[0].Uses != 1 {
		t.Fatalf("after the store recovered: nodes %+v, keys %+v", snap.Nodes, snap.Keys)
	}
}

// TestChangeAfterCloseIsNotAnsweredAsStored: a request that races the
// coordinator's Close (a key created during shutdown) must not be told its
// change was stored: the writer has stopped, nothing will store it.
func TestChangeAfterCloseIsNotAnsweredAsStored(t *testing.T) {
	e := newEnv(t, Config{})
	e.s.Close() // the HTTP servers still answer, as during serve's shutdown
	var key meshapi.KeyCreateResponse
	status, er := do(t, "POST", e.admin.URL+meshapi.PathAdminKeys, "", meshapi.KeyCreateRequest{}, &key)
	if status != http.StatusServiceUnavailable || er.Code != meshapi.ErrInternal {
		t.Fatalf("key created after Close: HTTP %d %+v (key %q), want 503: it was never stored", status, er, key.ID)
	}
}

// newFlakyEnv is a coordinator on a flakyStore, served on loopback.
func newFlakyEnv(t *testing.T, cfg Config) (*flakyStore, *Server, *httptest.Server, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	sq, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "coord.db"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{SQLite: sq}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler) // failed retries are the behaviour under test
	}
	s, err := New(ctx, cfg, fs)
	if err != nil {
		sq.Close()
		t.Fatal(err)
	}
	api := httptest.NewServer(s.Handler())
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(func() {
		fs.failing.Store(false)
		s.Close()
		api.Close()
		admin.Close()
	})
	return fs, s, api, admin
}

// TestEventsVisibleOnlyOnceStored: an event is shown to followers only once
// it is stored. (Shown earlier, a crash before the commit would lose it,
// and the restarted coordinator would give its number to another event.)
func TestEventsVisibleOnlyOnceStored(t *testing.T) {
	fs, s, api, admin := newFlakyEnv(t, Config{CommitTimeout: 200 * time.Millisecond})
	var key meshapi.KeyCreateResponse
	if status, er := do(t, "POST", admin.URL+meshapi.PathAdminKeys, "", meshapi.KeyCreateRequest{Reusable: true}, &key); status != http.StatusCreated {
		t.Fatalf("key: %d %+v", status, er)
	}
	var reg meshapi.RegisterResponse
	if status, er := do(t, "POST", api.URL+meshapi.PathRegister, "", meshapi.RegisterRequest{AuthKey: key.Key, Hostname: "web", PublicKey: randomKey()}, &reg); status != http.StatusOK {
		t.Fatalf("register: %d %+v", status, er)
	}

	fs.failing.Store(true)
	// Coming online is written behind: the stream opens at once, and the
	// event waits for the store.
	ms, status, er := openStream(t, api.URL, reg.Secret, "")
	if ms == nil {
		t.Fatalf("map stream: %d %+v", status, er)
	}
	ms.next(wait)
	eventually(t, wait, "the online change is queued", func() bool {
		online := false
		s.read(func(m *mesh.Mesh) { online = m.Node(reg.Node.ID).Online })
		return online
	})
	listed := listEvents(t, admin.URL)
	for _, ev := range listed {
		if ev.Type == meshapi.EventOnline {
			t.Fatalf("event %d (online) is listed while the store has not taken it: %+v", ev.Seq, listed)
		}
	}

	fs.failing.Store(false)
	eventually(t, 15*time.Second, "the online event is listed once stored", func() bool {
		evs := listEvents(t, admin.URL)
		return len(evs) == 2 && evs[1].Type == meshapi.EventOnline
	})
	stored, err := fs.SQLite.Events(context.Background(), 0, 100)
	if err != nil || len(stored) != 2 || stored[1].Type != meshapi.EventOnline {
		t.Fatalf("stored events %+v, %v", stored, err)
	}
}

func listEvents(t *testing.T, adminURL string) []meshapi.Event {
	t.Helper()
	resp, err := http.Get(adminURL + meshapi.PathAdminEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []meshapi.Event
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var ev meshapi.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// TestQueueBoundAnswers503: when the store falls behind, the writer's queue
// stops at its bound: further changes are refused with a retryable 503 and
// change nothing, instead of growing memory; once the store catches up,
// changes are taken again.
func TestQueueBoundAnswers503(t *testing.T) {
	const bound = 12
	fs, s, api, admin := newFlakyEnv(t, Config{CommitTimeout: 50 * time.Millisecond, MaxQueuedWrites: bound})
	var key meshapi.KeyCreateResponse
	if status, er := do(t, "POST", admin.URL+meshapi.PathAdminKeys, "", meshapi.KeyCreateRequest{Reusable: true}, &key); status != http.StatusCreated {
		t.Fatalf("key: %d %+v", status, er)
	}
	fs.failing.Store(true)
	register := func() (int, meshapi.Error) {
		return do(t, "POST", api.URL+meshapi.PathRegister, "", meshapi.RegisterRequest{AuthKey: key.Key, Hostname: "web", PublicKey: randomKey()}, nil)
	}
	// Each registration queues a few writes and times out waiting for
	// them; soon the queue is full and registrations are refused at once.
	refused := false
	for i := 0; i < 3*bound && !refused; i++ {
		status, er := register()
		if status != http.StatusServiceUnavailable || er.Code != meshapi.ErrInternal {
			t.Fatalf("registration %d with a failing store: %d %+v, want 503", i, status, er)
		}
		refused = strings.Contains(er.Message, "writes queued")
	}
	if !refused {
		t.Fatal("the queue never reached its bound")
	}
	var nodes, after int
	s.read(func(m *mesh.Mesh) { nodes = len(m.Nodes()) })
	for range 20 {
		if status, er := register(); status != http.StatusServiceUnavailable || !strings.Contains(er.Message, "writes queued") {
			t.Fatalf("over the bound: %d %+v, want 503 (writes queued)", status, er)
		}
	}
	s.read(func(m *mesh.Mesh) { after = len(m.Nodes()) })
	if _, queued := s.w.Overloaded(); after != nodes || queued >= 2*bound {
		t.Fatalf("refused registrations changed state: %d nodes -> %d, %d writes queued (bound %d)", nodes, after, queued, bound)
	}

	fs.failing.Store(false)
	eventually(t, 15*time.Second, "registrations are taken again once the store catches up", func() bool {
		status, _ := register()
		return status == http.StatusOK
	})
}
