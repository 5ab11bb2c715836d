// Package coordinator_test runs the real meshcoord binary: the CLI end to
// end, and crashes (kill -9) and restarts on the same SQLite file with the
// GC deadlines kept.
package coordinator_test

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
