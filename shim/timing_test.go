package shim

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshinit/meshinit/internal/syncbuf"
)

// These tests drive the supervision loop (run) inside a testing/synctest
// bubble, where time is fake: every deadline of the stop budget is checked
// to the nanosecond, and an hour of waiting takes no time. The child is
// simulated (simChild): what is under test is the loop's timing, not the
// kernel. The real child, signals and kill are covered by run_test.go and,
// through the real binary as PID 1, by integration/pid1.

// simChild is a child process for the timing tests. It records what the
// loop does to it and exits when the test (or a kill) says so; its exit
// reaches the loop as a SIGCHLD on the inbox, as a real one would.
type simChild struct {
	in *signalInbox

	mu      sync.Mutex
	started bool
	env     []string
	got     []syscall.Signal // forwarded signals, in order
	killed  time.Time        // when killAll ran; zero if never
	status  []reaped         // exits not yet reaped
}

const simPid = 4242

func (c *simChild) spawn(args, env []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started, c.env = true, env
	return simPid, nil
}

func (c *simChild) reapAll() []reaped {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.status
	c.status = nil
	return out
}

func (c *simChild) signal(pid int, sig syscall.Signal, group bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, sig)
	return nil
}

func (c *simChild) killAll(pid int) {
	c.mu.Lock()
	c.killed = time.Now()
	c.mu.Unlock()
	c.exit(syscall.WaitStatus(syscall.SIGKILL))
}

// exitCode ends the child with code.
func (c *simChild) exitCode(code int) { c.exit(syscall.WaitStatus(code << 8)) }

func (c *simChild) exit(ws syscall.WaitStatus) {
	c.mu.Lock()
	c.status = append(c.status, reaped{pid: simPid, status: ws})
	c.mu.Unlock()
	select {
	case c.in.chld <- syscall.SIGCHLD:
	default: // one pending SIGCHLD is as good as two
	}
}

func (c *simChild) hasStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

func (c *simChild) signals() []syscall.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *simChild) killedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// hookCall is one BeforeExit call: when it started and its ctx deadline.
type hookCall struct{ start, deadline time.Time }

// recordingHook is a BeforeExit that records its calls and then takes
// `takes` (returning early when its ctx ends), or with hang set ignores its
// ctx and returns only when hang is closed.
type recordingHook struct {
	takes time.Duration
	hang  chan struct{}

	mu    sync.Mutex
	calls []hookCall
}

func (h *recordingHook) fn(ctx context.Context) error {
	dl, _ := ctx.Deadline()
	h.mu.Lock()
	h.calls = append(h.calls, hookCall{time.Now(), dl})
	h.mu.Unlock()
	if h.hang != nil {
		<-h.hang
		return nil
	}
	done := ctx.Done()
	select {
	case <-time.After(h.takes):
		return nil
	case <-done:
		return ctx.Err()
	}
}

func (h *recordingHook) only(t *testing.T) hookCall {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) != 1 {
		t.Fatalf("BeforeExit ran %d times, want exactly once", len(h.calls))
	}
	return h.calls[0]
}

func (h *recordingHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// bubble is one run of the loop inside a synctest bubble.
type bubble struct {
	t     *testing.T
	child *simChild
	in    *signalInbox
	logs  *syncbuf.Buffer
	done  chan int
}

// startLoop runs the supervision loop with cfg on a simulated child and
// waits until it is idle (the child started, or Prepare blocked).
func startLoop(t *testing.T, cfg Config) *bubble {
	t.Helper()
	b := &bubble{t: t, logs: &syncbuf.Buffer{}, done: make(chan int, 1)}
	b.in = &signalInbox{chld: make(chan os.Signal, 1), forward: make(chan os.Signal, 256)}
	b.child = &simChild{in: b.in}
	if cfg.Args == nil {
		cfg.Args = []string{"app"}
	}
	cfg.Log = slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg = cfg.withDefaults()
	go func() { b.done <- run(cfg, b.in, b.child) }()
	synctest.Wait()
	return b
}

// send delivers a signal to meshinit and lets the loop handle it.
func (b *bubble) send(sig syscall.Signal) {
	b.in.forward <- sig
	synctest.Wait()
}

// running fails if the loop has returned.
func (b *bubble) running(why string) {
	b.t.Helper()
	select {
	case code := <-b.done:
		b.t.Fatalf("%s: run returned %d\n%s", why, code, b.logs)
	default:
	}
}

// returned fails unless the loop has returned; it gives the exit code.
func (b *bubble) returned(why string) int {
	b.t.Helper()
	synctest.Wait()
	select {
	case code := <-b.done:
		return code
	default:
		b.t.Fatalf("%s: run has not returned\n%s", why, b.logs)
		return 0
	}
}

// sleepUntil advances fake time to at and lets everything due run.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

// A plain init (no hooks) without MESH_STOP_KILL never kills: after the
// stop signal it waits for the child for as long as the child takes, and
// exits with its code.
func TestTimingPlainInitWaitsForever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startLoop(t, Config{StopTimeout: 10 * time.Second})
		b.send(syscall.SIGTERM)
		sleepUntil(time.Now().Add(24 * time.Hour))
		b.running("a day after SIGTERM")
		if k := b.child.killedAt(); !k.IsZero() {
			t.Fatal("the child was killed without MESH_STOP_KILL")
		}
		if got := b.child.signals(); !slices.Equal(got, []syscall.Signal{syscall.SIGTERM}) {
			t.Fatalf("child got %v, want the SIGTERM", got)
		}
		b.child.exitCode(0)
		if code := b.returned("child exited"); code != 0 {
			t.Fatalf("exit %d, want the child's 0", code)
		}
	})
}

// With a hook (the mesh) and no MESH_STOP_KILL: the hook starts exactly
// when only the reserve is left, with the stop deadline as its limit; the
// deadline passes without a kill, and run returns when the child exits,
// without a second hook call.
func TestTimingHookAtReserveNoKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &recordingHook{}
		b := startLoop(t, Config{StopTimeout: 10 * time.Second, LogoutReserve: 3 * time.Second, Hooks: Hooks{BeforeExit: hook.fn}})
		t0 := time.Now()
		b.send(syscall.SIGTERM)
		sleepUntil(t0.Add(7*time.Second - time.Nanosecond))
		if hook.count() != 0 {
			t.Fatal("hook started before only the reserve was left")
		}
		sleepUntil(t0.Add(7 * time.Second))
		call := hook.only(t)
		if !call.start.Equal(t0.Add(7*time.Second)) || !call.deadline.Equal(t0.Add(10*time.Second)) {
			t.Fatalf("hook at %v with deadline %v; want at 7s with the 10s stop deadline", call.start.Sub(t0), call.deadline.Sub(t0))
		}
		sleepUntil(t0.Add(time.Hour))
		b.running("an hour after SIGTERM")
		if !b.child.killedAt().IsZero() {
			t.Fatal("the child was killed without MESH_STOP_KILL")
		}
		b.child.exitCode(143)
		end := time.Now()
		if code := b.returned("child exited"); code != 143 {
			t.Fatalf("exit %d, want 143", code)
		}
		if !time.Now().Equal(end) {
			t.Fatalf("run returned %v after the child's exit, want at once", time.Since(end))
		}
		hook.only(t)
	})
}

// MESH_STOP_KILL=1: the hook at the reserve point, the kill of the group
// exactly at the deadline, exit 137.
func TestTimingStopKill(t *testing.T) {
	for _, withHook := range []bool{true, false} {
		t.Run(map[bool]string{true: "mesh", false: "plain init"}[withHook], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hook := &recordingHook{}
				cfg := Config{StopTimeout: 10 * time.Second, LogoutReserve: 3 * time.Second, StopKill: true}
				if withHook {
					cfg.Hooks.BeforeExit = hook.fn
				}
				b := startLoop(t, cfg)
				t0 := time.Now()
				b.send(syscall.SIGTERM)
				b.send(syscall.SIGTERM) // a second stop signal does not move the deadline
				sleepUntil(t0.Add(10*time.Second - time.Nanosecond))
				if !b.child.killedAt().IsZero() {
					t.Fatal("killed before the deadline")
				}
				sleepUntil(t0.Add(10 * time.Second))
				if k := b.child.killedAt(); !k.Equal(t0.Add(10 * time.Second)) {
					t.Fatalf("killed at %v, want exactly at the 10s deadline", k.Sub(t0))
				}
				if code := b.returned("after the kill"); code != 137 {
					t.Fatalf("exit %d, want 137", code)
				}
				if withHook {
					if call := hook.only(t); !call.start.Equal(t0.Add(7 * time.Second)) {
						t.Fatalf("hook at %v, want at 7s", call.start.Sub(t0))
					}
				}
			})
		})
	}
}

// The child exits on the stop signal: the hook runs at once with the
// reserve as its limit (capped by the stop deadline), and run returns when
// the hook does.
func TestTimingHookAfterChildExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &recordingHook{takes: 500 * time.Millisecond}
		b := startLoop(t, Config{StopTimeout: 10 * time.Second, LogoutReserve: 3 * time.Second, Hooks: Hooks{BeforeExit: hook.fn}})
		t0 := time.Now()
		b.send(syscall.SIGTERM)
		sleepUntil(t0.Add(2 * time.Second))
		b.child.exitCode(143)
		synctest.Wait()
		if call := hook.only(t); !call.start.Equal(t0.Add(2*time.Second)) || !call.deadline.Equal(t0.Add(5*time.Second)) {
			t.Fatalf("hook at %v, deadline %v; want at 2s with the 3s reserve (5s)", call.start.Sub(t0), call.deadline.Sub(t0))
		}
		b.running("while the hook runs")
		sleepUntil(t0.Add(2*time.Second + 500*time.Millisecond))
		if code := b.returned("hook done"); code != 143 {
			t.Fatalf("exit %d, want 143", code)
		}
	})
}

// A child that exits by itself, with no stop signal: the hook gets the
// reserve, and a hook that ignores its ctx is abandoned exactly then.
func TestTimingHungHookAbandonedAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &recordingHook{hang: make(chan struct{})}
		defer close(hook.hang) // the bubble ends only when every goroutine has
		b := startLoop(t, Config{LogoutReserve: 3 * time.Second, Hooks: Hooks{BeforeExit: hook.fn}})
		t0 := time.Now()
		b.child.exitCode(4)
		synctest.Wait()
		if call := hook.only(t); !call.deadline.Equal(t0.Add(3 * time.Second)) {
			t.Fatalf("hook deadline %v, want the 3s reserve", call.deadline.Sub(t0))
		}
		sleepUntil(t0.Add(3*time.Second - time.Nanosecond))
		b.running("before the hook's deadline")
		sleepUntil(t0.Add(3 * time.Second))
		if code := b.returned("at the hook's deadline"); code != 4 {
			t.Fatalf("exit %d, want 4", code)
		}
		if !strings.Contains(b.logs.String(), "did not return by its deadline") {
			t.Fatalf("the abandoned hook is not logged:\n%s", b.logs)
		}
	})
}

// A stop signal during a slow Prepare (the mesh join): Prepare's ctx is
// cancelled when only the reserve is left; a Prepare that ignores it is
// given up exactly at the deadline; the command never starts, exit 125,
// and the hook runs once.
func TestTimingStopDuringPrepare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &recordingHook{}
		var cancelled time.Time
		hung := make(chan struct{})
		defer close(hung) // the bubble ends only when every goroutine has
		prepare := func(ctx context.Context) ([]string, error) {
			<-ctx.Done()
			cancelled = time.Now()
			<-hung // ignores it: a join that hangs
			return nil, ctx.Err()
		}
		b := startLoop(t, Config{StopTimeout: 10 * time.Second, LogoutReserve: 3 * time.Second,
			Hooks: Hooks{Prepare: prepare, BeforeExit: hook.fn}})
		t0 := time.Now()
		b.send(syscall.SIGTERM)
		sleepUntil(t0.Add(7 * time.Second))
		if !cancelled.Equal(t0.Add(7 * time.Second)) {
			t.Fatalf("Prepare cancelled at %v, want at 7s", cancelled.Sub(t0))
		}
		b.running("between the reserve point and the deadline")
		sleepUntil(t0.Add(10 * time.Second))
		if code := b.returned("at the deadline"); code != ExitOwnFailure {
			t.Fatalf("exit %d, want 125", code)
		}
		if b.child.hasStarted() {
			t.Fatal("the command started after an abandoned start-up")
		}
		hook.only(t)
	})
}

// Signals that arrive during start-up are delivered in order once the
// child exists. Exactly two things are dropped, and docs/shim.md says so:
// a signal equal to the one queued just before it (SIGTERM SIGTERM counts
// once), and everything beyond 256 queued signals.
func TestTimingStartupSignalsQueuedDedupedCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		prepare := func(ctx context.Context) ([]string, error) {
			<-release
			return nil, nil
		}
		b := startLoop(t, Config{Hooks: Hooks{Prepare: prepare}})
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGHUP} {
			b.send(sig)
		}
		// 300 more, alternating so that none is a repeat of the one before.
		for i := range 300 {
			b.send([]syscall.Signal{syscall.SIGUSR2, syscall.SIGWINCH}[i%2])
		}
		close(release)
		synctest.Wait()
		got := b.child.signals()
		if len(got) != maxPending {
			t.Fatalf("child got %d start-up signals, want the cap of %d", len(got), maxPending)
		}
		if want := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGUSR2}; !slices.Equal(got[:4], want) {
			t.Fatalf("first signals %v, want %v (the repeated SIGHUP once)", got[:4], want)
		}
		if !strings.Contains(b.logs.String(), "too many signals during start-up") {
			t.Fatalf("the dropped signals are not logged:\n%s", b.logs)
		}
		b.child.exitCode(0)
		b.returned("child exited")
	})
}

// errJoin is the failure of TestTimingFailedPrepare's start-up.
var errJoin = errors.New("coordinator unreachable")

// A failed Prepare: 125 at once, the hook runs once with the reserve.
func TestTimingFailedPrepare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &recordingHook{}
		b := startLoop(t, Config{LogoutReserve: 3 * time.Second,
			Hooks: Hooks{Prepare: func(context.Context) ([]string, error) { return nil, errJoin }, BeforeExit: hook.fn}})
		if code := b.returned("failed Prepare"); code != ExitOwnFailure {
			t.Fatalf("exit %d, want 125", code)
		}
		hook.only(t)
	})
}
