package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
// a change that must be stored before its answer gets 503 and /healthz says
// failing; the writer keeps the queue and retries, so once the store works
// again the change is stored after all and health recovers.
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

	var key meshapi.KeyCreateResponse
	if status, er := do(t, "POST", admin.URL+meshapi.PathAdminKeys, "", meshapi.KeyCreateRequest{Reusable: true}, &key); status != http.StatusCreated {
		t.Fatalf("key while the store works: %d %+v", status, er)
	}

	fs.failing.Store(true)
	status, er := do(t, "POST", api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: key.Key, Hostname: "web", PublicKey: randomKey()}, nil)
	if status != http.StatusServiceUnavailable || er.Code != meshapi.ErrInternal {
		t.Fatalf("registration with a failing store: %d %+v, want 503 internal", status, er)
	}
	if status, h := health(t, api.URL); status != http.StatusServiceUnavailable || h.Status != "failing" || h.Store != "failing" {
		t.Fatalf("healthz with a failing store: %d %+v", status, h)
	}

	fs.failing.Store(false)
	eventually(t, 15*time.Second, "healthz recovers once the store works", func() bool {
		status, h := health(t, api.URL)
		return status == http.StatusOK && h.Status == "ok"
	})
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
