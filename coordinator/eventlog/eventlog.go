// Package eventlog is the coordinator's lifecycle history as followers see
// it ("meshcoord events --follow"): the stored events, newest in memory,
// older ones read back from the store, and old ones deleted after the
// retention.
//
// The log is fed with stored events only (Publish takes the ops of a
// committed batch), so an event anyone has seen survives a crash and its
// number is never given to another event. Whatever stores the events (the
// single writer on SQLite; on replicas, every replica as it applies the
// committed change log) feeds the log in commit order.
package eventlog

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Log is the event history. Publish is called from one goroutine at a time
// (in commit order); Copy and Prune from any.
type Log struct {
	st      store.Store
	ring    *deltalog.Log // recent events, one encoded line each
	pruned  atomic.Uint64 // events up to this seq were deleted for retention
	onEvent func(meshapi.Event)
}

// New returns the log of st, whose newest stored event is lastSeq, keeping
// the last memSize events in memory. onEvent (if not nil) hears every
// published event, in order (metrics, the log file); it must not block.
func New(st store.Store, lastSeq uint64, memSize int, onEvent func(meshapi.Event)) *Log {
	if onEvent == nil {
		onEvent = func(meshapi.Event) {}
	}
	return &Log{st: st, ring: deltalog.New(memSize, lastSeq, 1), onEvent: onEvent}
}

// Publish hands the events among ops, which are stored, to followers.
func (l *Log) Publish(ops []store.Op) {
	for i := range ops {
		e, ok := ops[i].Event()
		if !ok {
			continue
		}
		line, err := json.Marshal(e)
		if err != nil {
			panic("eventlog: encoding an event: " + err.Error()) // our own type: cannot fail
		}
		l.ring.Append(deltalog.Entry{Version: e.Seq, Subject: uint64(e.NodeID), Data: append(line, '\n')})
		l.onEvent(e)
	}
}

// Fill publishes the stored events after the newest published one up to
// through, read back from the store: for a replica that reloaded its state
// instead of applying each change (events since deleted for retention are
// skipped).
func (l *Log) Fill(ctx context.Context, through uint64) error {
	for l.ring.Last() < through {
		evs, err := l.st.Events(ctx, l.ring.Last(), 1000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Seq > through {
				return nil
			}
			for l.ring.Last()+1 < e.Seq { // pruned meanwhile: nothing to show
				l.ring.Append(deltalog.Entry{Version: l.ring.Last() + 1})
			}
			line, _ := json.Marshal(e) // our own type: cannot fail
			l.ring.Append(deltalog.Entry{Version: e.Seq, Subject: uint64(e.NodeID), Data: append(line, '\n')})
			l.onEvent(e)
		}
		if len(evs) == 0 {
			for l.ring.Last() < through {
				l.ring.Append(deltalog.Entry{Version: l.ring.Last() + 1})
			}
		}
	}
	return nil
}

// Last returns the seq of the newest event published.
func (l *Log) Last() uint64 { return l.ring.Last() }

// pruneBatch is how many events one prune statement deletes, so that
// pruning a large backlog never holds the store for long.
const pruneBatch = 5000

// PruneInterval is how often events past a retention should be deleted:
// a tenth of the retention, at most hourly.
func PruneInterval(retention time.Duration) time.Duration { return min(retention/10, time.Hour) }

// Prune deletes the stored events older than before, in batches, until
// none is left; followers no longer see them, from memory either.
func (l *Log) Prune(ctx context.Context, before time.Time) error {
	for {
		n, through, err := l.st.PruneEvents(ctx, before, pruneBatch)
		if err != nil {
			return err
		}
		if through > l.pruned.Load() {
			l.pruned.Store(through)
		}
		if n < pruneBatch {
			return nil
		}
	}
}

// Writer is where Copy sends lines: it buffers them, and Flush sends what
// is buffered to the follower.
type Writer interface {
	Write(line []byte) (int, error)
	Flush() error
}

// Copy writes to w every event with seq > since, oldest first (from the
// store while they are older than memory holds), one JSON object per line.
// Without follow it returns when it has written the newest; with follow it
// waits for new events until ctx ends or stop is closed. It returns the
// first write error.
func (l *Log) Copy(ctx context.Context, since uint64, follow bool, stop <-chan struct{}, w Writer) error {
	cursor := since
	buf := make([]deltalog.Entry, 0, 256)
	for {
		// Events past the retention are gone from the store; the ones
		// still in memory are not shown either.
		cursor = max(cursor, l.pruned.Load())
		entries, wait, ok := l.ring.Read(cursor, buf[:0], 0)
		switch {
		case !ok && cursor+1 < l.ring.Oldest():
			// Older than memory holds: a page from the store.
			n, err := l.copyStored(ctx, &cursor, w)
			if err != nil {
				return err
			}
			if n == 0 {
				cursor = l.ring.Oldest() - 1
			}
			continue
		case !ok:
			entries = nil // since is in the future: wait for it
		}
		for _, e := range entries {
			if _, err := w.Write(e.Data); err != nil {
				return err
			}
			cursor = e.Version
		}
		if len(entries) > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			continue
		}
		if !follow {
			return w.Flush()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		}
	}
}

// copyStored writes one page of stored events after *cursor.
func (l *Log) copyStored(ctx context.Context, cursor *uint64, w Writer) (int, error) {
	evs, err := l.st.Events(ctx, *cursor, 1000)
	if err != nil {
		return 0, err
	}
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if _, err := w.Write(append(b, '\n')); err != nil {
			return 0, err
		}
		*cursor = e.Seq
	}
	return len(evs), w.Flush()
}
