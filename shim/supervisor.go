package shim

import (
	"log/slog"
	"os"
	"syscall"
	"time"
)

// maxPending bounds the signals kept for a child that does not exist yet.
const maxPending = 256

// supervisor is the state of the single supervision loop. All of it is
// touched only by the goroutine running Run (the hook runs in its own
// goroutine and talks back through a channel).
type supervisor struct {
	cfg    Config
	log    *slog.Logger
	in     *signalInbox
	procs  processes
	budget stopBudget
	hook   beforeExit

	pending []syscall.Signal // caught before the child existed

	child  int // child's pid (and process group id); 0 before it starts
	exited bool
	code   int

	hookTimer     *time.Timer // fires when only the reserve is left
	deadlineTimer *time.Timer // fires at the stop deadline
}

func newSupervisor(cfg Config, in *signalInbox, procs processes) *supervisor {
	return &supervisor{
		cfg:    cfg,
		log:    cfg.Log,
		in:     in,
		procs:  procs,
		budget: stopBudget{timeout: cfg.StopTimeout, reserve: cfg.LogoutReserve},
		hook:   beforeExit{hook: cfg.Hooks.BeforeExit, log: cfg.Log},
	}
}

// start spawns the child and delivers what arrived during start-up.
func (s *supervisor) start(env []string) error {
	pid, err := s.procs.spawn(s.cfg.Args, env)
	if err != nil {
		return err
	}
	s.child = pid
	s.log.Debug("command started", "pid", pid, "command", s.cfg.Args[0])
	for _, sig := range s.pending {
		s.forward(sig)
	}
	s.pending = nil
	return nil
}

// supervise is the loop while the child lives: reap, forward, keep the stop
// budget. It returns after the child exited and BeforeExit is done (or out of
// time).
func (s *supervisor) supervise() int {
	for !s.exited {
		select {
		case <-s.in.chld:
			s.reap()
		case sig := <-s.in.forward:
			s.onSignal(sig)
		case <-timerC(s.hookTimer):
			s.hook.start(s.budget.deadline, "only the logout reserve is left before the stop deadline")
		case <-timerC(s.deadlineTimer):
			s.atDeadline()
		}
	}
	return s.finish(s.code, "command exited")
}

// finish runs BeforeExit if it has not run yet and waits for it, but never
// past its own deadline or the stop deadline, reaping orphans meanwhile.
func (s *supervisor) finish(code int, why string) int {
	s.hook.start(s.budget.hookDeadline(time.Now()), why)
	select {
	case <-s.hook.wait():
		return code // no hook (a plain init): nothing to wait for, no timer to arm
	default:
	}
	limit := time.NewTimer(time.Until(s.hook.deadline))
	defer limit.Stop()
	for {
		select {
		case <-s.hook.wait():
			return code
		case <-s.in.chld:
			s.reap()
		case sig := <-s.in.forward:
			s.onSignal(sig)
		case <-limit.C:
			s.log.Warn("before-exit hook did not return by its deadline; exiting without it")
			return code
		case <-timerC(s.deadlineTimer):
			s.log.Warn("stop deadline reached while the before-exit hook runs; exiting without it")
			return code
		}
	}
}

// onSignal handles one caught signal: the first stop signal starts the
// budget; every signal goes to the child, or waits for it during start-up.
func (s *supervisor) onSignal(caught os.Signal) {
	sig, ok := caught.(syscall.Signal)
	if !ok {
		return
	}
	if sig == s.cfg.StopSignal && s.budget.start(time.Now()) {
		s.armStopTimers(sig)
	}
	switch {
	case s.child == 0:
		if n := len(s.pending); n > 0 && s.pending[n-1] == sig {
			return // the same signal twice in a row means nothing more
		}
		if len(s.pending) >= maxPending {
			s.log.Warn("too many signals during start-up; dropping", "signal", SignalName(sig))
			return
		}
		s.pending = append(s.pending, sig)
	case s.exited:
		s.log.Debug("signal after the command exited; not forwarded", "signal", SignalName(sig))
	default:
		s.forward(sig)
	}
}

// forward passes sig on to the living child (or its group).
func (s *supervisor) forward(sig syscall.Signal) {
	if err := s.procs.signal(s.child, sig, s.cfg.KillGroup); err != nil {
		s.log.Warn("cannot forward signal", "signal", SignalName(sig), "pid", s.child, "err", err)
		return
	}
	s.log.Debug("forwarded signal", "signal", SignalName(sig), "pid", s.child, "group", s.cfg.KillGroup)
}

// reap collects exit statuses; the child's becomes our exit code, the rest
// are orphans that were reparented to us.
func (s *supervisor) reap() {
	for _, r := range s.procs.reapAll() {
		if r.pid == s.child && !s.exited {
			s.exited = true
			s.code = exitCode(r.status)
			s.log.Debug("command exited", "pid", r.pid, "code", s.code)
			continue
		}
		s.log.Debug("reaped orphan", "pid", r.pid)
	}
}

// armStopTimers starts the stop budget's timers at the first stop signal.
// The budget times the hooks (the logout) and, with StopKill, the kill; a
// plain init without StopKill arms nothing and waits for the child as long
// as it takes, as tini does.
func (s *supervisor) armStopTimers(sig syscall.Signal) {
	hooks := s.cfg.Hooks.Prepare != nil || s.cfg.Hooks.BeforeExit != nil
	if !hooks && !s.cfg.StopKill {
		s.log.Info("stop signal received; waiting for the command (no deadline)", "signal", SignalName(sig))
		return
	}
	if hooks {
		s.hookTimer = time.NewTimer(time.Until(s.budget.hookStart()))
	}
	s.deadlineTimer = time.NewTimer(time.Until(s.budget.deadline))
	s.log.Info("stop signal received", "signal", SignalName(sig), "deadline_in", s.cfg.StopTimeout.String(), "kill_at_deadline", s.cfg.StopKill)
}

// atDeadline ends the stop budget while the child runs. With StopKill the
// child's whole group is killed, and the child itself if it left the group,
// so that our exit, after the logout, ends the container before the
// runtime's SIGKILL of everything. Without it the child keeps its graceful
// shutdown: the runtime's own timeout is the one that ends it.
func (s *supervisor) atDeadline() {
	if s.exited {
		return
	}
	if !s.cfg.StopKill {
		s.log.Info("stop deadline passed; the command still runs and meshinit keeps waiting for it (MESH_STOP_KILL=1 would kill it)", "pid", s.child, "after", s.cfg.StopTimeout.String())
		return
	}
	s.log.Warn("stop deadline reached: killing the command (MESH_STOP_KILL)", "pid", s.child, "after", s.cfg.StopTimeout.String())
	s.procs.killAll(s.child)
}

func (s *supervisor) stopTimers() {
	for _, t := range []*time.Timer{s.hookTimer, s.deadlineTimer} {
		if t != nil {
			t.Stop()
		}
	}
}

// timerC is t's channel, or nil (never ready) for no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}
