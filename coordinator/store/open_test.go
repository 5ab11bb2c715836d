package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactedHidesThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://meshcoord:s3cret@db:5432/mesh?sslmode=require": "postgres://meshcoord:xxxxx@db:5432/mesh?sslmode=require",
		"postgresql://db/mesh":            "postgresql://db/mesh",
		"/var/lib/meshcoord/mesh.db":      "/var/lib/meshcoord/mesh.db",
		"postgres://u:p@[::1]:5432/x?a=b": "postgres://u:xxxxx@[::1]:5432/x?a=b",
	} {
		got := Redacted(in)
		if got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenPicksTheStoreByName(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*SQLite); !ok {
		t.Errorf("a file name opened %T", st)
	}
	st.Close()
	// A malformed URL is refused with its password hidden.
	_, err = Open(ctx, "postgres://u:s3cret@db:notaport/x", nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "database URL") {
		t.Errorf("bad URL: %v", err)
	}
}
