package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// writer is the single goroutine that writes state changes to the store.
// Changes are queued in the order the state lock made them; the writer takes
// everything queued so far and commits it as one transaction (group commit),
// so a burst of changes costs one commit, not one per change.
//
// A failing store is retried with backoff, keeping the queue and its order:
// the in-memory state stays authoritative, requests that wait for their
// commit time out with 503, and /healthz says the store is failing.
//
// The queue is bounded by admission, not by blocking: enqueue never waits
// (it runs under the state lock), and callers that start a change ask
// overloaded first and answer a retryable 503 instead of queueing more.
type writer struct {
	st        store.Store
	log       *slog.Logger
	maxQueued int

	mu      sync.Mutex
	pending *batch
	latest  *batch // the batch holding the most recent op
	queued  int    // ops pending or being committed
	closed  bool
	wake    chan struct{} // capacity 1: "there is work"
	done    chan struct{} // closed when run returns

	healthy  func(ok bool) // reports store health (metrics, /healthz)
	observed func(n int, d time.Duration)
	// committed is called with each batch's ops once they are stored, in
	// commit order, before anyone waiting for the batch is released.
	committed func(ops []store.Op)
}

// errWriterClosed is the error of changes queued after the writer stopped.
var errWriterClosed = errors.New("the coordinator is shutting down")

// batch is the set of ops one commit will write; everyone who queued into
// it waits on done and then reads err.
type batch struct {
	ops  []store.Op
	done chan struct{}
	err  error
}

func newWriter(st store.Store, log *slog.Logger, maxQueued int) *writer {
	return &writer{
		st: st, log: log, maxQueued: maxQueued,
		pending:   &batch{done: make(chan struct{})},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		healthy:   func(bool) {},
		observed:  func(int, time.Duration) {},
		committed: func([]store.Op) {},
	}
}

// overloaded reports whether the queue is at its bound: the store is slower
// than the changes coming in (or failing), and new changes must wait.
func (w *writer) overloaded() (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued >= w.maxQueued, w.queued
}

// enqueue queues ops and returns the batch they will commit with. It never
// blocks, so it may be called with the state lock held (and must be, to keep
// the store's order equal to the memory's).
func (w *writer) enqueue(ops ...store.Op) *batch {
	w.mu.Lock()
	b := w.pending
	if len(ops) > 0 {
		b.ops = append(b.ops, ops...)
		w.queued += len(ops)
		w.latest = b
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return b
}

// barrier returns a batch that commits after every op queued so far (a
// committed one if nothing is pending). Call it with the state lock held
// after a change to wait for that change to be stored.
func (w *writer) barrier() *batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latest == nil {
		b := &batch{done: make(chan struct{})}
		close(b.done)
		return b
	}
	return w.latest
}

// wait blocks until b is committed, ctx ends, or timeout passes.
func (b *batch) wait(ctx context.Context, timeout time.Duration) error {
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

// run commits batches until close is called and the queue is empty.
func (w *writer) run() {
	defer close(w.done)
	backoff := 10 * time.Millisecond
	for {
		w.mu.Lock()
		b := w.pending
		closed := w.closed
		empty := len(b.ops) == 0
		if !empty {
			w.pending = &batch{done: make(chan struct{})}
		}
		w.mu.Unlock()
		if empty {
			if closed {
				// Nothing is committed after this. A request racing Close
				// that queues into this batch (it stays pending) is told so,
				// rather than told that its change was stored.
				b.err = errWriterClosed
				close(b.done)
				return
			}
			<-w.wake
			continue
		}
		for {
			start := time.Now()
			err := w.st.Apply(context.Background(), b.ops)
			if err == nil {
				w.observed(len(b.ops), time.Since(start))
				w.healthy(true)
				w.committed(b.ops)
				backoff = 10 * time.Millisecond
				break
			}
			w.healthy(false)
			w.mu.Lock()
			closing := w.closed
			w.mu.Unlock()
			if closing && backoff >= time.Second {
				// Shutting down with a failing store: give up rather than hang.
				w.log.Error("store write failed at shutdown; changes lost", "ops", len(b.ops), "err", err)
				b.err = err
				break
			}
			w.log.Error("store write failed; retrying", "ops", len(b.ops), "err", err, "retry_in", backoff)
			time.Sleep(backoff) // retry pacing of a failing disk, not synchronisation
			if backoff < 5*time.Second {
				backoff *= 2
			}
		}
		w.mu.Lock()
		w.queued -= len(b.ops)
		w.mu.Unlock()
		close(b.done)
	}
}

// close stops the writer after it has committed everything queued.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}
