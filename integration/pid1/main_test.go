// Package pid1 tests the real meshinit binary as a container init: as a
// child of the test (then a subreaper) and as PID 1 of its own PID namespace
// (unshare --pid --fork --mount-proc). The children are small programs in
// internal/: sigchild reports the signals it receives, hookinit is shim.Run
// with fake hooks for the stop budget.
package pid1

import (
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// prog builds one of the helper programs in internal/ once per test process.
func prog(t *testing.T, name string) string {
	t.Helper()
	return harness.Program(t, "./integration/pid1/internal/"+name)
}

// setup is how every test of this suite starts: the gate, then the meshinit
// binary and the signal-reporting child.
func setup(t *testing.T) (meshinit, sigchild string) {
	t.Helper()
	harness.Integration(t)
	return harness.Binary(t, "meshinit"), prog(t, "sigchild")
}
