// Package replicas_test runs several real meshcoord servers on one real
// PostgreSQL database, with real node clients (controlclient) given the
// list of all of them: the active one serves, the others stand by and take
// over when it dies, and no lifecycle promise breaks on the way.
package replicas_test

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
