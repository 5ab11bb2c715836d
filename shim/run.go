package shim

import (
	"context"
	"errors"
	"os"
)

// Run supervises one child to the end and returns the exit code for the
// process: the child's code, 128+N if it died of signal N, 127 if the command
// was not found, 126 if it could not be executed, 125 if meshinit failed
// before the child started (a failed Prepare included).
//
// If the child exits while its own children still run, Run does not wait for
// them: it runs BeforeExit (reaping orphans meanwhile) and returns the
// child's code. As PID 1 that ends the namespace, as with tini.
func Run(cfg Config) (exitCode int) {
	cfg = cfg.withDefaults()
	// Handlers first: a signal that arrives from here on is queued for the
	// child instead of killing us or being lost. They stay installed when
	// Run returns: the process is about to exit, and undoing them costs as
	// much as installing them (a thread hand-off per signal in os/signal),
	// which would double the start-up cost of every container.
	in := catchSignals()

	if cfg.Subreaper && os.Getpid() != 1 {
		if err := becomeSubreaper(); err != nil {
			cfg.Log.Warn("cannot become a child subreaper: orphans of the command will not be reaped by meshinit", "err", err)
		}
	}

	return run(cfg, in, osProcesses{})
}

// run is Run after the process-wide set-up: the supervision of one child
// from Prepare to BeforeExit, with every effect on processes going through
// procs.
func run(cfg Config, in *signalInbox, procs processes) int {
	s := newSupervisor(cfg, in, procs)
	defer s.stopTimers()

	env, ok := s.prepare()
	if !ok {
		return s.finish(ExitOwnFailure, "start-up failed")
	}
	if err := s.start(overlayEnv(cfg.Env, env)); err != nil {
		code := ExitOwnFailure
		var se *startError
		if errors.As(err, &se) {
			code = se.code
		}
		s.log.Error(err.Error(), "exit", code)
		return s.finish(code, "command did not start")
	}
	return s.supervise()
}

// prepare runs Hooks.Prepare while collecting signals for the child-to-be.
// A stop signal starts the budget; when only the reserve is left, Prepare's
// ctx is cancelled, and at the deadline Run stops waiting for it.
func (s *supervisor) prepare() (env []string, ok bool) {
	if s.cfg.Hooks.Prepare == nil {
		return nil, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		env []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		env, err := s.cfg.Hooks.Prepare(ctx)
		done <- result{env, err}
	}()
	abandoned := false
	for {
		select {
		case r := <-done:
			if r.err != nil {
				s.log.Error("start-up failed, the command was not started", "err", r.err)
				return nil, false
			}
			if abandoned {
				// Prepare finished after all, but the budget left is the
				// logout's: starting the command now would only get it killed.
				s.log.Error("start-up finished too late in the stop budget, the command was not started")
				return nil, false
			}
			return r.env, true
		case sig := <-s.in.forward:
			s.onSignal(sig)
		case <-timerC(s.hookTimer):
			s.log.Warn("stop signal during start-up: cancelling start-up to keep the logout reserve")
			abandoned = true
			cancel()
		case <-timerC(s.deadlineTimer):
			s.log.Error("start-up did not finish before the stop deadline, the command was not started")
			return nil, false
		}
	}
}
