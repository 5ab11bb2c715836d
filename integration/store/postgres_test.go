package store_test

import (
	"context"
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
	storetest.Run(t, storetest.Backend{New: pg.NewDatabase, Open: openPG, Shared: true})
}

// A restart of the server under an open store: writes fail while it is
// down and work again once it is back, without reopening the store.
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
	snap, err := s.Load(ctx)
	if err != nil || snap.Meta["x"] != "after" {
		t.Fatalf("after the restart: meta %v, %v", snap.Meta, err)
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
