// Package store_test runs the store conformance suite (the one the unit
// tests run on SQLite) against a real PostgreSQL server, and the tests only
// a server database has: a restart of the server under a running store,
// and fencing of a store that lost its lock to another coordinator.
package store_test

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
