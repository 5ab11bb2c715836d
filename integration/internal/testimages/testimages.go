// Package testimages builds the static programs the runtime suites put into
// images next to meshinit: testapp (images/testapp, the app the suites
// drive) and hello (images/example/hello, the example app). Each is built
// once per test process, with CGO_ENABLED=0 like every binary we ship.
package testimages

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
	errs  = map[string]error{}
)

// Programs maps each program name to its package directory.
var Programs = map[string]string{
	"testapp": "./images/testapp",
	"hello":   "./images/example/hello",
}

// Binary returns the path of the static program name (see Programs).
func Binary(t testing.TB, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if err, ok := errs[name]; ok {
		t.Fatalf("building %s failed earlier: %v", name, err)
	}
	pkg, ok := Programs[name]
	if !ok {
		t.Fatalf("testimages: unknown program %q", name)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "meshinit-testimages-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = harness.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		errs[name] = fmt.Errorf("%v\n%s", err, b)
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[name] = out
	return out
}

// Cleanup removes the built programs. Call it from TestMain.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		built = map[string]string{}
	}
}
