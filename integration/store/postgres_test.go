package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/coordinator/store/storetest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
)

func openPG(ctx context.Context, url string) (store.Store, error) {
	return store.OpenPostgres(ctx, url, nil)
}

func TestPostgresConformance(t *testing.T) {
	harness.Integration(t)
	pg := pgtest.Shared(t)
	storetest.Run(t, storetest.Backend{New: pg.NewDatabase, Open: openPG})
}

// A restart of the server under an open store: writes fail while it is
// down and work again once it is back, without reopening the store; the
// lock is taken again, so a second coordinator is still refused.
func TestPostgresRestartUnderAnOpenStore(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	s, err := store.OpenPostgres(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(ctx, []store.Op{store.SetMeta("x", "before")}); err != nil {
		t.Fatal(err)
	}
	pg.Kill(t)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = s.Apply(short, []store.Op{store.SetMeta("x", "down")})
	cancel()
	if err == nil {
		t.Fatal("a write succeeded while the server was down")
	}
	pg.Resume(t)
	harness.Eventually(t, 30*time.Second, "writes work again", func() (bool, string) {
		err := s.Apply(ctx, []store.Op{store.SetMeta("x", "after")})
		return err == nil, errString(err)
	})
	harness.Eventually(t, 30*time.Second, "the lock is taken again", func() (bool, string) {
		s2, err := store.OpenPostgres(ctx, url, nil)
		if err == nil {
			s2.Close()
			return false, "a second coordinator opened the database"
		}
		return strings.Contains(err.Error(), "in use by another meshcoord"), err.Error()
	})
	snap, err := s.Load(ctx)
	if err != nil || snap.Meta["x"] != "after" {
		t.Fatalf("after the restart: meta %v, %v", snap.Meta, err)
	}
}

// A coordinator whose lock session died (its connection was cut) and that
// another coordinator replaced can never write again, not even once it
// gets its connections back: it is fenced. The new owner writes.
func TestPostgresLostLockIsFenced(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	a, err := store.OpenPostgres(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Cut a's lock session, as a network partition would.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var cut bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&cut); err != nil || !cut {
		t.Fatalf("terminating the lock holder: %v, %v", cut, err)
	}
	var b store.Store
	harness.Eventually(t, 30*time.Second, "a second coordinator takes over", func() (bool, string) {
		b, err = store.OpenPostgres(ctx, url, nil)
		return err == nil, errString(err)
	})
	defer b.Close()
	if err := b.Apply(ctx, []store.Op{store.SetMeta("x", "b")}); err != nil {
		t.Fatal(err)
	}
	err = a.Apply(ctx, []store.Op{store.SetMeta("x", "a")})
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the replaced coordinator's write: %v; want ErrFenced", err)
	}
	select {
	case <-a.Fenced():
	default:
		t.Fatal("a fenced store did not say so (Fenced)")
	}
	snap, err := b.Load(ctx)
	if err != nil || snap.Meta["x"] != "b" {
		t.Fatalf("meta %v, %v; want x=b", snap.Meta, err)
	}
}

// The helper's own promise: a stopped server resumes with its data.
func TestPgtestResumeKeepsData(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	pg.Restart(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v int
	if err := c.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("after a restart: %d, %v", v, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A standby takes over only once the holder has been silent for its
// patience: not while the holder lives, even after the holder's lock
// session was cut (the holder retakes it), and once it is gone. The
// replaced holder learns it is fenced.
func TestPostgresStandbyPatienceAndFencing(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	a, err := store.OpenPostgres(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const patience = 3 * time.Second
	if _, err := store.OpenPostgresStandby(ctx, url, nil, patience); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("standby while the holder lives: %v; want ErrInUse", err)
	}
	// The holder's lock session is cut: it retakes the lock before the
	// standby's patience runs out, and the standby never gets the mesh.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	terminate := func() {
		t.Helper()
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Fatal(err)
		}
	}
	terminate()
	deadline := time.Now().Add(2 * patience)
	for time.Now().Before(deadline) {
		if s, err := store.OpenPostgresStandby(ctx, url, nil, patience); err == nil {
			s.Close()
			t.Fatal("a standby took over from a live holder whose session was cut")
		}
		select {
		case <-a.Fenced():
			t.Fatal("the live holder was fenced")
		case <-time.After(100 * time.Millisecond): // the standby's polling pace
		}
	}
	if err := a.Apply(ctx, []store.Op{store.SetMeta("x", "a")}); err != nil {
		t.Fatalf("the holder's write after retaking its lock: %v", err)
	}
	// The holder goes silent for good (its session cut, its keeper gone
	// with Close): the standby takes over after its patience.
	a.Close()
	var b store.Store
	harness.Eventually(t, 30*time.Second, "the standby takes over", func() (bool, string) {
		b, err = store.OpenPostgresStandby(ctx, url, nil, patience)
		return err == nil, errString(err)
	})
	defer b.Close()
	if err := b.Apply(ctx, []store.Op{store.SetMeta("x", "b")}); err != nil {
		t.Fatal(err)
	}
}
