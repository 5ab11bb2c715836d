package shim

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"time"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultStopSignal    = syscall.SIGTERM
	DefaultStopTimeout   = 10 * time.Second // docker stop's default
	DefaultLogoutReserve = 3 * time.Second
)

// Hooks let the caller run code around the child's life without knowing about
// signals or reaping. Both are optional.
//
// Neither hook may start subprocesses that it waits for with exec.Cmd.Wait
// while the child runs: Run's reaper owns wait4(-1) from the moment the child
// starts and would steal their exit statuses. Prepare runs before that moment,
// so it may use os/exec.
type Hooks struct {
	// Prepare runs after signal handlers are installed and before the child
	// starts; ctx is bounded by the caller (MESH_WAIT_TIMEOUT) and is also
	// cancelled when a stop signal leaves only LogoutReserve of the stop
	// budget. It returns extra "K=V" environment for the child, replacing
	// variables of the same name in Config.Env. An error
	// makes Run log it (one clear line) and return 125 without starting the
	// child.
	Prepare func(ctx context.Context) (env []string, err error)
	// BeforeExit runs exactly once before Run returns, when non-nil: after
	// the child exited, or at the latest when only LogoutReserve is left
	// before the stop deadline (the child then keeps running, and Run keeps
	// waiting for it), and also after a failed Prepare (so a half-joined
	// node is cleaned up). ctx carries the deadline it must respect; Run
	// never waits for it past that deadline. Its error is logged, not fatal.
	BeforeExit func(ctx context.Context) error
}

// Config is what Run needs to supervise one child.
type Config struct {
	Args []string // child's command: Args[0] is looked up in the child's PATH
	Env  []string // child's environment ("K=V"); Prepare's env is laid over it (same name: Prepare wins)

	// KillGroup (MESH_KILL_GROUP) forwards signals to the child's whole
	// process group instead of the child alone.
	KillGroup bool
	// Subreaper (MESH_SUBREAPER, on by default in meshinit) makes Run a
	// child subreaper when it is not PID 1, so orphans of the child are
	// reparented to it and reaped.
	Subreaper bool
	// StopSignal (MESH_STOP_SIGNAL) starts the stop budget; default SIGTERM.
	// It is forwarded like every signal, so it must pass CheckStopSignal.
	StopSignal syscall.Signal
	// StopTimeout (MESH_STOP_TIMEOUT) is the stop budget, counted from the
	// first StopSignal. It times the hooks: BeforeExit starts at the latest
	// when only LogoutReserve is left, and Run never waits for a hook past
	// it. It ends the child only with StopKill. Without hooks and without
	// StopKill it has no effect: Run waits for the child as long as the
	// child takes, as tini does. Default 10s.
	StopTimeout time.Duration
	// StopKill (MESH_STOP_KILL) kills the child's process group at the stop
	// deadline; Run then returns 137. Off by default: Run never cuts a
	// graceful shutdown short by itself, the runtime's own kill (docker
	// stop's, the kubelet's) ends a child that takes longer than it allows.
	StopKill bool
	// LogoutReserve (MESH_LOGOUT_TIMEOUT) is the part of the stop budget
	// kept for BeforeExit, and BeforeExit's time limit when the child exits
	// on its own; default 3s.
	LogoutReserve time.Duration

	// Log receives one line per event; nil discards.
	Log   *slog.Logger
	Hooks Hooks
}

// withDefaults fills zero (and negative) durations and the zero signal.
func (c Config) withDefaults() Config {
	if c.StopSignal == 0 {
		c.StopSignal = DefaultStopSignal
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.LogoutReserve <= 0 {
		c.LogoutReserve = DefaultLogoutReserve
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}
