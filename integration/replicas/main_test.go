// Package replicas_test runs several real meshcoord servers on one real
// PostgreSQL database, all serving at once, with real node clients given
// the list of all of them (controlclient) or talking to one replica at a
// time over HTTP: any replica serves any node, the map streams of every
// replica follow one global order, and no lifecycle promise breaks when a
// replica is killed or the database restarts.
package replicas_test

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
