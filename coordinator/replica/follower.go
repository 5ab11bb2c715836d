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
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// Log is what a Follower reads: the change log (store.Postgres).
type Log interface {
	store.ChangeReader
	WatchChanges(ctx context.Context, poll time.Duration, wake func())
}

// Follower applies the change log to a replica's memory: every committed
// change once, in order, whether it was read by the follower's own loop,
// during a write (which catches up first), or handed over by the write
// that made it.
type Follower struct {
	log    Log
	apply  func(store.Change)
	reload func(ctx context.Context) (uint64, error)
	logger *slog.Logger

	mu     sync.Mutex
	cursor uint64 // last version applied
}

// readBatch is how many changes one read takes.
const readBatch = 500

// NewFollower returns a follower whose memory holds the log up to version
// from. apply is called with each change in order, one at a time; reload
// is called when the log cannot be followed from the cursor (the replica
// fell behind the log's retention): it reloads the memory from the tables
// and returns the version it now holds.
func NewFollower(log Log, from uint64, apply func(store.Change), reload func(context.Context) (uint64, error), logger *slog.Logger) *Follower {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Follower{log: log, apply: apply, reload: reload, logger: logger, cursor: from}
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
	for {
		cs, err := r.ChangesAfter(ctx, f.cursor, readBatch)
		if errors.Is(err, store.ErrLogGap) {
			v, rerr := f.reload(ctx)
			if rerr != nil {
				return fmt.Errorf("reloading after %v: %w", err, rerr)
			}
			f.logger.Warn("change log not followable from here; state reloaded", "from", f.cursor, "to", v, "err", err)
			f.cursor = v
			continue
		}
		if err != nil {
			return err
		}
		for _, c := range cs {
			f.apply(c)
			f.cursor = c.Last()
		}
		if len(cs) < readBatch {
			return nil
		}
	}
}

// Committed hands over a change the replica itself just committed. It is
// applied unless the follower's loop got to it first; a change beyond the
// cursor (the loop has not caught up to just before it) is read from the
// log with whatever precedes it.
func (f *Follower) Committed(ctx context.Context, c store.Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case c.Last() <= f.cursor:
		return nil // applied already
	case c.First == f.cursor+1:
		f.apply(c)
		f.cursor = c.Last()
		return nil
	default:
		return f.catchUpLocked(ctx, f.log)
	}
}

// Run follows the log until ctx ends: on every notification, after every
// reconnect of the listener, and every poll interval. A failed read (the
// database restarting) waits for the next wake-up.
func (f *Follower) Run(ctx context.Context, poll time.Duration) {
	wake := make(chan struct{}, 1)
	go f.log.WatchChanges(ctx, poll, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		if err := f.CatchUp(ctx, f.log); err != nil && ctx.Err() == nil {
			f.logger.Warn("reading the change log failed; retrying at the next wake-up", "err", err)
		}
	}
}
