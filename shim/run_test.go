package shim

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/syncbuf"
)

// These tests run Run inside the test process with real children (/bin/sh).
// They must not run in parallel: Run owns the process's signals and reaps
// every child with wait4(-1). The black-box suite (integration/pid1) covers
// the same behaviour through the real binary, as PID 1 too.

func testConfig(t *testing.T, args ...string) (Config, *syncbuf.Buffer) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	logs := &syncbuf.Buffer{}
	return Config{
		Args: args,
		Env:  []string{"PATH=/usr/bin:/bin"},
		Log:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

// waitForFile polls for a file the child creates when it is ready.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countingHook is a BeforeExit that records its calls.
type countingHook struct {
	calls    atomic.Int32
	start    atomic.Int64
	deadline atomic.Int64
}

func (h *countingHook) fn(ctx context.Context) error {
	h.calls.Add(1)
	h.start.Store(time.Now().UnixNano())
	if d, ok := ctx.Deadline(); ok {
		h.deadline.Store(d.UnixNano())
	}
	return nil
}

func TestRunExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"/bin/sh", "-c", "exit 0"}, 0},
		{[]string{"/bin/sh", "-c", "exit 42"}, 42},
		{[]string{"/bin/sh", "-c", "kill -USR2 $$"}, 128 + int(syscall.SIGUSR2)},
		{[]string{"no-such-command-shim-test"}, ExitCommandMissing},
		{[]string{"/"}, ExitNotExecutable},
		{nil, ExitOwnFailure},
	} {
		cfg, logs := testConfig(t, c.args...)
		hook := &countingHook{}
		cfg.Hooks.BeforeExit = hook.fn
		if got := Run(cfg); got != c.want {
			t.Errorf("Run(%q) = %d, want %d\n%s", c.args, got, c.want, logs)
		}
		if n := hook.calls.Load(); n != 1 {
			t.Errorf("Run(%q): BeforeExit ran %d times, want once", c.args, n)
		}
	}
}

func TestRunPrepare(t *testing.T) {
	t.Run("env reaches the child", func(t *testing.T) {
		cfg, logs := testConfig(t, "/bin/sh", "-c", `test "$MESH_NAME" = web.mesh`)
		cfg.Hooks.Prepare = func(context.Context) ([]string, error) { return []string{"MESH_NAME=web.mesh"}, nil }
		if got := Run(cfg); got != 0 {
			t.Fatalf("child did not see Prepare's env: exit %d\n%s", got, logs)
		}
	})
	t.Run("error: 125, BeforeExit, no child", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		cfg, logs := testConfig(t, "/bin/sh", "-c", "touch "+marker)
		cfg.Hooks.Prepare = func(context.Context) ([]string, error) { return nil, errors.New("coordinator unreachable") }
		hook := &countingHook{}
		cfg.Hooks.BeforeExit = hook.fn
		if got := Run(cfg); got != ExitOwnFailure {
			t.Fatalf("exit %d, want 125", got)
		}
		if hook.calls.Load() != 1 {
			t.Fatalf("BeforeExit ran %d times after a failed Prepare, want once", hook.calls.Load())
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("child started after a failed Prepare")
		}
		if !strings.Contains(logs.String(), "coordinator unreachable") {
			t.Fatalf("the reason is not logged:\n%s", logs)
		}
	})
}

func TestRunForwardsSignal(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	cfg, logs := testConfig(t, "/bin/sh", "-c", `trap 'exit 9' USR1; touch `+ready+`; while :; do sleep 0.01; done`)
	done := make(chan int, 1)
	go func() { done <- Run(cfg) }()
	waitForFile(t, ready)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != 9 {
			t.Fatalf("exit %d, want 9 from the child's USR1 trap\n%s", got, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child never got SIGUSR1\n%s", logs)
	}
}

// TestRunStopKill: with StopKill a real child that ignores TERM is killed
// at the deadline (the exact timing is in timing_test.go).
func TestRunStopKill(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	// The shell ignores TERM, and so does sleep, which inherits SIG_IGN.
	cfg, logs := testConfig(t, "/bin/sh", "-c", `trap '' TERM; touch `+ready+`; exec sleep 30`)
	cfg.StopKill = true
	cfg.StopTimeout = 600 * time.Millisecond
	cfg.LogoutReserve = 300 * time.Millisecond
	hook := &countingHook{}
	cfg.Hooks.BeforeExit = hook.fn
	done := make(chan int, 1)
	go func() { done <- Run(cfg) }()
	waitForFile(t, ready)
	t0 := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var got int
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return after the stop deadline\n%s", logs)
	}
	elapsed := time.Since(t0)
	if got != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit %d, want 137 (killed at the deadline)\n%s", got, logs)
	}
	if elapsed < cfg.StopTimeout {
		t.Fatalf("returned after %v, before the %v deadline", elapsed, cfg.StopTimeout)
	}
	if hook.calls.Load() != 1 {
		t.Fatalf("BeforeExit ran %d times, want once", hook.calls.Load())
	}
	if start := time.Unix(0, hook.start.Load()).Sub(t0); start < cfg.StopTimeout-cfg.LogoutReserve {
		t.Fatalf("BeforeExit started %v after TERM, before only the reserve was left", start)
	}
	if dl := time.Unix(0, hook.deadline.Load()).Sub(t0); dl < cfg.StopTimeout || dl > cfg.StopTimeout+time.Second {
		t.Fatalf("BeforeExit deadline %v after TERM, want the stop deadline", dl)
	}
}

func TestRunDoesNotWaitForHookPastItsDeadline(t *testing.T) {
	cfg, logs := testConfig(t, "/bin/sh", "-c", "exit 4")
	cfg.LogoutReserve = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	cfg.Hooks.BeforeExit = func(ctx context.Context) error {
		<-release // ignores ctx: a hook that hangs
		return nil
	}
	t0 := time.Now()
	if got := Run(cfg); got != 4 {
		t.Fatalf("exit %d, want 4\n%s", got, logs)
	}
	if elapsed := time.Since(t0); elapsed > 5*time.Second {
		t.Fatalf("Run waited %v for a hung hook", elapsed)
	}
	if !strings.Contains(logs.String(), "did not return by its deadline") {
		t.Fatalf("the abandoned hook is not logged:\n%s", logs)
	}
}

func TestRunWarnsOnceWithoutSubreaper(t *testing.T) {
	cfg, logs := testConfig(t, "/bin/sh", "-c", "exit 0")
	cfg.Subreaper = true
	saved := becomeSubreaper
	defer func() { becomeSubreaper = saved }()
	calls := 0
	becomeSubreaper = func() error { calls++; return syscall.EPERM }
	if got := Run(cfg); got != 0 {
		t.Fatalf("exit %d, want 0: a refused subreaper is not fatal\n%s", got, logs)
	}
	if calls != 1 || strings.Count(logs.String(), "cannot become a child subreaper") != 1 {
		t.Fatalf("want one attempt and one warning, got %d attempts:\n%s", calls, logs)
	}
}
