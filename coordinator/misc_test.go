package coordinator

import (
	"os"
	"testing"
)

// readFile returns the database and its WAL as one string, for checks that
// something is NOT stored.
func readFile(t *testing.T, db string) string {
	t.Helper()
	var all []byte
	for _, p := range []string{db, db + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return string(all)
}
