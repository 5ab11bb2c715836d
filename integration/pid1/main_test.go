// Package pid1 tests the real meshinit binary as a container init: as a
// child of the test (then a subreaper) and as PID 1 of its own PID namespace
// (unshare --pid --fork --mount-proc). The children are small programs in
// internal/: sigchild reports the signals it receives, hookinit is shim.Run
// with fake hooks for the stop budget.
package pid1

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	progMu.Lock()
	if progDir != "" {
		os.RemoveAll(progDir)
	}
	progMu.Unlock()
	harness.Cleanup()
	os.Exit(code)
}

var (
	progMu  sync.Mutex
	progDir string
	progs   = map[string]string{}
)

// prog builds one of the helper programs in internal/ once per test process.
func prog(t *testing.T, name string) string {
	t.Helper()
	progMu.Lock()
	defer progMu.Unlock()
	if p, ok := progs[name]; ok {
		return p
	}
	if progDir == "" {
		d, err := os.MkdirTemp("", "meshinit-pid1-progs-")
		if err != nil {
			t.Fatal(err)
		}
		progDir = d
	}
	out := filepath.Join(progDir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./integration/pid1/internal/"+name)
	cmd.Dir = harness.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	progs[name] = out
	return out
}

// setup is how every test of this suite starts: the gate, then the meshinit
// binary and the signal-reporting child.
func setup(t *testing.T) (meshinit, sigchild string) {
	t.Helper()
	harness.Integration(t)
	return harness.Binary(t, "meshinit"), prog(t, "sigchild")
}
