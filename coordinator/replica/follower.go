// Package replica runs what makes a coordinator one replica among several
// on one PostgreSQL database (docs/replicas.md): following the change log,
// so that the replica applies every committed change exactly once and in
// order, and keeping its heartbeat, so that the others know it is alive and
// it knows when another one died. It calls the coordinator back for the
// work and holds no state of the mesh itself.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// Log is what a Follower reads: the change log (store.Postgres).
type Log interface {
	store.ChangeReader
	WatchChanges(ctx context.Context, poll time.Duration, wake func(last uint64))
}

// Writer makes changes of the log (store.Postgres).
type Writer interface {
	WriteChange(ctx context.Context, after uint64, decide store.Decide) (store.Change, error)
}

// Follower applies the change log to a replica's memory: every committed
// change once, in order, whether it was read by the follower's own loop,
// during a write (which catches up first), or made by the replica itself.
type Follower struct {
	log    Log
	apply  func(store.Change) error
	reload func(ctx context.Context) (uint64, error)
	logger *slog.Logger

	mu     sync.Mutex
	cursor uint64 // last version applied
	// held is cursor, for the loop's wake-ups to read without the lock: a
	// notification of a change the memory holds already (its own) needs
	// no read.
	held atomic.Uint64
	// dirty: the memory may hold what the database does not (a write's
	// commands ran and its commit failed, or a change did not apply), so
	// it must be reloaded before anything else.
	dirty bool

	// wake asks Run's loop for a read (buffered: asks while one is queued
	// coalesce).
	wake chan struct{}
	// askMu guards asked: closed when the next read of Run's loop, which
	// begins after every Refresh that joined it, ends.
	askMu sync.Mutex
	asked chan struct{}
}

// readBatch is how many changes one read takes.
const readBatch = 500

// NewFollower returns a follower whose memory holds the log up to version
// from. apply is called with each change in order, one at a time (an error
// means the memory can no longer be trusted); reload is called when the
// log cannot be followed from the cursor (the replica fell behind the
// log's retention) or the memory is not the database's: it reloads the
// memory from the tables and returns the version it now holds.
func NewFollower(log Log, from uint64, apply func(store.Change) error, reload func(context.Context) (uint64, error), logger *slog.Logger) *Follower {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Follower{log: log, apply: apply, reload: reload, logger: logger, wake: make(chan struct{}, 1)}
	f.setCursor(from)
	return f
}

// Cursor returns the last version applied.
func (f *Follower) Cursor() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// CatchUp applies everything r holds after the cursor. A write calls it
// with its transaction's reader, under the mesh lock, before it decides.
func (f *Follower) CatchUp(ctx context.Context, r store.ChangeReader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.catchUpLocked(ctx, r)
}

func (f *Follower) catchUpLocked(ctx context.Context, r store.ChangeReader) error {
	if f.dirty {
		if err := f.reloadLocked(ctx, "the memory is not the database's"); err != nil {
			return err
		}
	}
	for {
		cs, err := r.ChangesAfter(ctx, f.cursor, readBatch)
		if errors.Is(err, store.ErrLogGap) {
			if err := f.reloadLocked(ctx, err.Error()); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := f.apply(c); err != nil {
				f.dirty = true
				return fmt.Errorf("applying change %d: %w", c.First, err)
			}
			f.setCursor(c.Last())
		}
		if len(cs) < readBatch {
			return nil
		}
	}
}

func (f *Follower) reloadLocked(ctx context.Context, why string) error {
	v, err := f.reload(ctx)
	if err != nil {
		f.dirty = true
		return fmt.Errorf("reloading the state (%s): %w", why, err)
	}
	f.logger.Warn("state reloaded from the database", "why", why, "from", f.cursor, "to", v)
	f.setCursor(v)
	f.dirty = false
	return nil
}

// Decide is the replica's part of a write: run the commands on a memory
// that holds every change up to last, and return the ops they made and the
// map versions those take. Its commands apply their ops to the memory as
// they go.
type Decide func(last uint64) (ops []store.Op, versions uint64, err error)

// Write makes one change: under the mesh lock, it catches up with
// everything committed (by the transaction's reader), runs decide, and
// commits. Then, before any later change is applied, it calls done with
// the write's outcome: the change as stored (Versions 0: decide made no
// ops and nothing was written), or the error. The follower's lock is held
// throughout, so its loop cannot apply the change a second time. ran
// reports whether decide ran: when it did and the write failed, the memory
// holds what the database may not, and it is reloaded (now, or before the
// next catch-up if the database is still away).
func (f *Follower) Write(ctx context.Context, w Writer, decide Decide, done func(store.Change, error) error) (c store.Change, ran bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	after := f.cursor
	if f.dirty {
		after = store.NoPrefetch // reloaded first: nothing to read from here
	}
	c, err = w.WriteChange(ctx, after, func(ctx context.Context, r store.ChangeReader, last uint64) ([]store.Op, uint64, error) {
		if err := f.catchUpLocked(ctx, r); err != nil {
			return nil, 0, err
		}
		if f.cursor != last {
			f.dirty = true
			return nil, 0, fmt.Errorf("caught up to version %d, but the log ends at %d", f.cursor, last)
		}
		ran = true
		return decide(last)
	})
	if err == nil && c.Versions > 0 {
		f.setCursor(c.Last())
	}
	if derr := done(c, err); err == nil && derr != nil {
		err = derr // stored, but the memory did not take it
	}
	if err != nil && ran {
		f.dirty = true
		if rerr := f.reloadLocked(ctx, "a write failed: "+err.Error()); rerr != nil {
			f.logger.Warn("reload after a failed write failed; retrying before the next change", "err", rerr)
		}
	}
	return c, ran, err
}

// Dirty reports whether the memory waits for a reload.
func (f *Follower) Dirty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirty
}

func (f *Follower) setCursor(v uint64) {
	f.cursor = v
	f.held.Store(v)
}

// Refresh applies what the log holds now, for a request that needs a
// change committed elsewhere a moment ago (a secret this replica does not
// know yet, a stream resumed from a replica ahead of it). It asks Run's
// loop for a read and returns once a read that began after the call has
// ended, or when ctx ends (also when Run is not running). Calls coalesce
// in that loop: however many requests come at once (a node's retries, or
// someone trying made-up secrets), at most one read runs and one waits,
// so the database's load does not grow with them.
func (f *Follower) Refresh(ctx context.Context) {
	f.askMu.Lock()
	if f.asked == nil {
		f.asked = make(chan struct{})
	}
	done := f.asked
	f.askMu.Unlock()
	f.poke()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// poke asks Run's loop for a read; a request already queued covers it.
func (f *Follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// takeAsked returns the Refresh callers the read about to begin serves
// (nil: none); later callers wait for the next read.
func (f *Follower) takeAsked() chan struct{} {
	f.askMu.Lock()
	defer f.askMu.Unlock()
	done := f.asked
	f.asked = nil
	return done
}

// followReadTimeout bounds one catch-up of Run's loop. A read stuck on a
// connection whose packets are dropped would otherwise hold the follower's
// lock, and with it every write of this replica (a write catches up
// first), until TCP gives up, minutes later.
const followReadTimeout = 15 * time.Second

// Run follows the log until ctx ends: on every notification, after every
// reconnect of the listener, every poll interval, and when Refresh asks. A failed read (the
// database restarting) waits for the next wake-up.
func (f *Follower) Run(ctx context.Context, poll time.Duration) {
	go f.log.WatchChanges(ctx, poll, func(last uint64) {
		if last != 0 && last <= f.held.Load() {
			return // applied already (a change of this replica)
		}
		f.poke()
	})
	failing := "" // the last failure, logged once until the log reads again
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		asked := f.takeAsked()
		rctx, cancel := context.WithTimeout(ctx, followReadTimeout)
		err := f.CatchUp(rctx, f.log)
		cancel()
		if asked != nil {
			close(asked)
		}
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != failing:
			failing = err.Error()
			f.logger.Warn("reading the change log failed; retrying at every wake-up", "err", err)
		case err == nil && failing != "":
			failing = ""
			f.logger.Info("reading the change log works again")
		}
	}
}
