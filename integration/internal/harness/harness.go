// Package harness is the shared plumbing of the integration suites: the gate
// that decides whether a slow, root-only suite runs, building our binaries
// once per test process, and polling with a deadline.
//
// The suites run when MESHINIT_INTEGRATION=1 (the README's test command sets
// it, as root). Under plain "go test ./..." they skip with a message saying
// how to run them. With CI=true a missing prerequisite is a failure, never a
// skip: nothing an issue requires may silently not run in CI.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// EnvIntegration turns the integration suites on.
const EnvIntegration = "MESHINIT_INTEGRATION"

// InCI reports whether we run under CI (CI=true), where skips are failures.
func InCI() bool { return os.Getenv("CI") == "true" }

// Integration skips t unless the integration suites are on, and requires
// root: they create PID and network namespaces and start daemons.
func Integration(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvIntegration) != "1" {
		if InCI() {
			t.Fatalf("CI=true but %s is not 1: CI must run the integration suites (use the README's test command)", EnvIntegration)
		}
		t.Skipf("integration suite: set %s=1 and run as root, or use the README's test command (make test)", EnvIntegration)
	}
	if os.Geteuid() != 0 {
		Missing(t, "root: the integration suites create namespaces and start daemons")
	}
}

// Missing reports an absent prerequisite: a skip normally, a failure in CI.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing prerequisite in CI: %s", what)
	}
	t.Skipf("missing prerequisite: %s", what)
}

// LookPath returns the path of an external program the suite needs, or
// reports it Missing.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s not on PATH (scripts/runtimes.sh installs it)", name))
	}
	return p
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("harness: cannot locate source file")
	}
	// integration/internal/harness/harness.go -> repo root
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

var (
	buildMu   sync.Mutex
	buildDir  string
	buildErrs = map[string]error{}  // by package
	built     = map[string]string{} // package -> executable
	builtBase = map[string]string{} // executable name -> package
)

// Binary builds ./cmd/<name> (static, CGO_ENABLED=0, as the images ship it)
// once per test process and returns the path of the executable. Call
// Cleanup from TestMain to remove the build directory.
func Binary(t testing.TB, name string) string {
	t.Helper()
	return Program(t, "./cmd/"+name)
}

// Program builds the main package pkg, a directory relative to the repo root
// ("./images/testapp"), the way Binary does: static, with BuildTags, once
// per test process. The executable is named after the directory.
func Program(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if err, ok := buildErrs[pkg]; ok {
		t.Fatalf("building %s failed earlier: %v", pkg, err)
	}
	name := filepath.Base(pkg)
	if other, ok := builtBase[name]; ok {
		t.Fatalf("harness: %s and %s would both build an executable named %s", other, pkg, name)
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "meshinit-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-tags", BuildTags, "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErrs[pkg] = fmt.Errorf("%v\n%s", err, b)
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	builtBase[name] = pkg
	return out
}

// BuildTags are the build tags of `make build` (the Makefile's TAGS), so
// tests run the binary users get: urfave_cli_no_docs leaves out urfave/cli's
// man-page generator, whose package init every meshinit start would pay.
const BuildTags = "urfave_cli_no_docs"

// BuildDir is the directory Binary builds into ("" before the first build).
func BuildDir() string {
	buildMu.Lock()
	defer buildMu.Unlock()
	return buildDir
}

// Cleanup removes what Binary built. Call it from TestMain after m.Run.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
		built = map[string]string{}
		builtBase = map[string]string{}
	}
}

var (
	atExitMu sync.Mutex
	atExit   []func()
)

// AtExit registers f to run when Main ends, after the tests: for what a
// test process shares between its tests (a database server).
func AtExit(f func()) {
	atExitMu.Lock()
	atExit = append(atExit, f)
	atExitMu.Unlock()
}

// Main is a TestMain body: run the tests, clean up the binaries and what
// AtExit registered, exit.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	atExitMu.Lock()
	for _, f := range atExit {
		f()
	}
	atExitMu.Unlock()
	os.Exit(code)
}

// Eventually polls cond every few milliseconds until it returns true or
// timeout passes, then fails t with the last reason cond gave. It is the
// only way suites wait: never a bare sleep.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, reason string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	var reason string
	for {
		var ok bool
		ok, reason = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %s", what, timeout, reason)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}
