package shim

import (
	"context"
	"log/slog"
	"time"
)

// beforeExit runs Hooks.BeforeExit at most once, in its own goroutine, so
// that the supervision loop keeps reaping and can stop waiting for it at the
// stop deadline.
type beforeExit struct {
	hook     func(ctx context.Context) error
	log      *slog.Logger
	started  bool
	deadline time.Time     // the hook's ctx deadline, once started
	done     chan struct{} // closed when the hook returned; nil before start
}

// start runs the hook with the given deadline unless it already ran. With no
// hook it completes at once.
func (b *beforeExit) start(deadline time.Time, why string) {
	if b.started {
		return
	}
	b.started = true
	b.deadline = deadline
	b.done = make(chan struct{})
	if b.hook == nil {
		close(b.done)
		return
	}
	b.log.Debug("running before-exit hook", "reason", why, "budget", time.Until(deadline).Round(time.Millisecond).String())
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	go func() {
		defer close(b.done)
		defer cancel()
		begin := time.Now()
		if err := b.hook(ctx); err != nil {
			b.log.Warn("before-exit hook failed", "err", err, "took", time.Since(begin).Round(time.Millisecond).String())
			return
		}
		b.log.Debug("before-exit hook done", "took", time.Since(begin).Round(time.Millisecond).String())
	}()
}

// wait returns the channel to select on for the hook's end: nil (never ready)
// until started.
func (b *beforeExit) wait() <-chan struct{} { return b.done }
