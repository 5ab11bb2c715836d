package coordinator

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// A replica's writer: the replica-mode counterpart of the commit queue.
// Changes cannot be decided before they are written, as in SQLite mode:
// the memory must first hold every change of every replica. So a change
// is a request queued here, and one goroutine writes the change log: once
// it holds the mesh lock and has caught up, it takes every request queued
// so far (those that came while it waited for the lock included), runs
// each request's command on the current memory, and writes their ops as
// one change (replica.Follower.Write). The lock is held until the commit
// is flushed, so the mesh makes one commit at a time: grouping whatever
// waits into it is what keeps replicas as fast as a single writer.

// writeReq is one change waiting for the writer.
type writeReq struct {
	cmd     func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError)
	state   atomic.Int32  // reqQueued, reqTaken or reqAbandoned
	decided chan struct{} // closed once cmd ran (e is set)
	e       *apiError
	batch   *commit.Batch // finished when the write is committed or failed
}

const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// take claims r for a write; false if its caller gave up on it.
func (r *writeReq) take() bool { return r.state.CompareAndSwap(reqQueued, reqTaken) }

// abandon gives r up, unless the writer took it already.
func (r *writeReq) abandon() bool { return r.state.CompareAndSwap(reqQueued, reqAbandoned) }

// replicaWriter queues the requests and runs the writes.
type replicaWriter struct {
	// write is one write of the change log; it takes the requests (take)
	// once it holds the lock. retry: it failed before taking any.
	write func() (retry bool)
	max   int

	mu      sync.Mutex
	pending []*writeReq
	closed  bool
	cut     bool // the replica is cut from the database: refuse at once
	wake    chan struct{}
	done    chan struct{}
}

func newReplicaWriter(max int, write func() bool) *replicaWriter {
	return &replicaWriter{write: write, max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// take returns the requests queued so far whose callers still wait, each
// claimed for the write in progress.
func (w *replicaWriter) take() []*writeReq {
	w.mu.Lock()
	reqs := w.pending
	w.pending = nil
	w.mu.Unlock()
	taken := reqs[:0]
	for _, r := range reqs {
		if r.take() {
			taken = append(taken, r)
		}
	}
	return taken
}

// errWriterClosed is the error of requests queued at shutdown.
var errWriterClosed error = ownCause("the coordinator is shutting down")

// enqueue queues a request; it refuses when the writer is closed, or when
// the queue is at its bound (the database is slow or away) unless force.
func (w *replicaWriter) enqueue(r *writeReq, force bool) *apiError {
	w.mu.Lock()
	switch {
	case w.closed:
		w.mu.Unlock()
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal, "the coordinator is shutting down; retry")
	case w.cut && !force:
		w.mu.Unlock()
		// At once, so that the node tries another replica now rather than
		// after the commit timeout.
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal,
			"this coordinator cannot reach its database: retry on another one")
	case len(w.pending) >= w.max && !force:
		n := len(w.pending)
		w.mu.Unlock()
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal,
			"the coordinator's database is behind (%d changes queued): retry in a moment", n)
	}
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// refuse makes enqueue refuse requests (cut) or take them again.
func (w *replicaWriter) refuse(cut bool) {
	w.mu.Lock()
	w.cut = cut
	w.mu.Unlock()
}

// run writes while requests are queued, until close; then it fails what
// is left.
func (w *replicaWriter) run() {
	defer close(w.done)
	backoff := time.Duration(0)
	for {
		w.mu.Lock()
		queued, closed := len(w.pending), w.closed
		w.mu.Unlock()
		switch {
		case closed:
			for _, r := range w.take() {
				r.e = unavailable(errWriterClosed)
				close(r.decided)
				r.batch.Finish(errWriterClosed)
			}
			return
		case queued == 0:
			<-w.wake
		case w.write():
			// The database is away and nothing was decided: the requests
			// stay queued, and their callers time out (abandon).
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			time.Sleep(backoff) // retry pacing of an absent database, not synchronisation
		default:
			backoff = 0
		}
	}
}

// close stops the writer after the write in progress; queued requests
// fail.
func (w *replicaWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}
