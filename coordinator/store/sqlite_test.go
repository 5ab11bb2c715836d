package store

import (
	"context"
	"path/filepath"
	"testing"
)

// The behaviour every store shares is tested by the conformance suite
// (storetest, run in conformance_test.go); these are SQLite's own.

func TestSQLiteSchemaVersionAfterReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coord.db")
	for range 2 {
		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
		}
		s.Close()
	}
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b.db"} {
		if _, err := OpenSQLite(context.Background(), p); err == nil {
			t.Errorf("OpenSQLite(%q) accepted", p)
		}
	}
}
