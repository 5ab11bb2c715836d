// Package commit is the coordinator's path to its store: one goroutine
// that writes every change, in the order it was made, as few transactions
// as possible (group commit).
//
// Changes are queued in the order the coordinator made them (it enqueues
// under its state lock). The writer takes everything queued so far and
// commits it as one transaction, so a burst of changes costs one commit,
// not one per change; whoever needs a change stored before it answers
// waits for the Batch the change went into.
//
// A failing store is retried with backoff, keeping the queue and its order:
// the in-memory state stays authoritative, waiters time out, and Healthy
// reports the failure. The queue is bounded by admission, not by blocking:
// Enqueue never waits, and callers that start a change ask Overloaded first
// and refuse the change (a retryable 503) rather than queue more.
package commit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// ErrClosed is the error of changes queued after the queue stopped: they
// were never stored.
var ErrClosed = errors.New("the coordinator is shutting down")

// Hooks tell the rest of the coordinator what the writer did. Each is
// called from the writer goroutine; nil hooks are skipped.
type Hooks struct {
	// Healthy reports whether the last commit worked.
	Healthy func(ok bool)
	// Observed reports each commit: how many ops, and how long it took.
	Observed func(ops int, d time.Duration)
	// Committed gets each batch's ops once they are stored, in commit
	// order, before anyone waiting for the batch is released.
	Committed func(ops []store.Op)
}

// Queue is the write queue of one store. Create it with New, start Run in a
// goroutine, and Close it at the end.
type Queue struct {
	st        store.Store
	log       *slog.Logger
	maxQueued int
	hooks     Hooks

	mu      sync.Mutex
	pending *Batch
	latest  *Batch // the batch holding the most recent op
	queued  int    // ops pending or being committed
	closed  bool
	wake    chan struct{} // capacity 1: "there is work"
	done    chan struct{} // closed when Run returns
}

// Batch is the set of ops one commit writes; everyone who queued into it
// waits for the same commit.
type Batch struct {
	ops  []store.Op
	done chan struct{}
	err  error
}

// New returns a queue for st that holds at most maxQueued ops before
// Overloaded says so.
func New(st store.Store, log *slog.Logger, maxQueued int, hooks Hooks) *Queue {
	if hooks.Healthy == nil {
		hooks.Healthy = func(bool) {}
	}
	if hooks.Observed == nil {
		hooks.Observed = func(int, time.Duration) {}
	}
	if hooks.Committed == nil {
		hooks.Committed = func([]store.Op) {}
	}
	return &Queue{
		st: st, log: log, maxQueued: maxQueued, hooks: hooks,
		pending: newBatch(),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

func newBatch() *Batch { return &Batch{done: make(chan struct{})} }

// NewBatch returns a batch that its writer finishes with Finish: for
// writers other than a Queue (a replica's, which commits through the
// change log).
func NewBatch() *Batch { return newBatch() }

// Finish releases everyone waiting for b: err nil means it is stored.
// Call it once.
func (b *Batch) Finish(err error) {
	b.err = err
	close(b.done)
}

// Overloaded reports whether the queue is at its bound (the store is
// slower than the changes coming in, or failing), and how many ops wait.
func (q *Queue) Overloaded() (bool, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued >= q.maxQueued, q.queued
}

// Enqueue queues ops and returns the batch they will commit with. It never
// blocks, so it may be called with the state lock held (and must be, to
// keep the store's order equal to the memory's).
func (q *Queue) Enqueue(ops ...store.Op) *Batch {
	q.mu.Lock()
	b := q.pending
	if len(ops) > 0 {
		b.ops = append(b.ops, ops...)
		q.queued += len(ops)
		q.latest = b
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return b
}

// Barrier returns a batch that commits after every op queued so far (one
// already committed if nothing is pending). Call it with the state lock
// held after a change to wait for that change to be stored.
func (q *Queue) Barrier() *Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.latest == nil {
		b := newBatch()
		close(b.done)
		return b
	}
	return q.latest
}

// Wait blocks until b is committed, ctx ends, or timeout passes.
func (b *Batch) Wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// Run commits batches until Close is called and the queue is empty.
func (q *Queue) Run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		b := q.pending
		closed := q.closed
		empty := len(b.ops) == 0
		if !empty {
			q.pending = newBatch()
		}
		q.mu.Unlock()
		if empty {
			if closed {
				// Nothing is committed after this. A change racing Close
				// that queues into this batch (it stays pending) is told
				// so, rather than told that it was stored.
				b.err = ErrClosed
				close(b.done)
				return
			}
			<-q.wake
			continue
		}
		q.commit(b)
		q.mu.Lock()
		q.queued -= len(b.ops)
		q.mu.Unlock()
		close(b.done)
	}
}

// commit stores b, retrying with backoff while the store fails; at
// shutdown it gives up after a few tries rather than hang.
func (q *Queue) commit(b *Batch) {
	backoff := 10 * time.Millisecond
	for {
		start := time.Now()
		err := q.st.Apply(context.Background(), b.ops)
		if err == nil {
			q.hooks.Observed(len(b.ops), time.Since(start))
			q.hooks.Healthy(true)
			q.hooks.Committed(b.ops)
			return
		}
		q.hooks.Healthy(false)
		q.mu.Lock()
		closing := q.closed
		q.mu.Unlock()
		if closing && backoff >= time.Second {
			q.log.Error("store write failed at shutdown; changes lost", "ops", len(b.ops), "err", err)
			b.err = err
			return
		}
		q.log.Error("store write failed; retrying", "ops", len(b.ops), "err", err, "retry_in", backoff)
		time.Sleep(backoff) // retry pacing of a failing disk, not synchronisation
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// Close stops the writer after it has committed everything queued.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}
