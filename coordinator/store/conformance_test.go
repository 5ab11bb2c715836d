package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/coordinator/store/storetest"
)

// TestSQLiteConformance runs the store conformance suite on SQLite files;
// integration/store runs it on a real PostgreSQL server.
func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t testing.TB) string { return filepath.Join(t.TempDir(), "sub", "coord.db") },
		Open: func(ctx context.Context, loc string) (store.Store, error) {
			return store.OpenSQLite(ctx, loc)
		},
	})
}
