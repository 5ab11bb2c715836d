// Package asynclog is a log/slog handler that never makes its caller wait
// for the log output. Records are queued and written by one goroutine, in
// order; when the output is blocked (stderr a full pipe that nobody reads,
// a stuck terminal) and the queue is full, new records are dropped and
// counted, and the first record written once the output moves again is
// preceded by a warning saying how many were lost.
//
// A server logs from the paths that must not stall: a request, the store's
// writer, a timer. With this handler a blocked log costs lines, never
// liveness.
package asynclog

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueue is the number of records New queues when given 0.
const DefaultQueue = 4096

// Handler is a slog.Handler that queues records for another handler.
// Handlers derived with WithAttrs and WithGroup share the queue.
type Handler struct {
	next slog.Handler // the handler this one (with its attrs and groups) writes to
	q    *queue
}

type queue struct {
	records chan entry
	dropped atomic.Int64 // in total
	lost    atomic.Int64 // dropped and not yet reported
	closeMu sync.RWMutex // held for reading while enqueueing; for writing by Close
	closed  bool
	done    chan struct{} // closed when the writer goroutine has returned
}

type entry struct {
	h          slog.Handler
	r          slog.Record
	lostBefore int64 // records dropped just before this one
}

// New returns a handler that queues up to size records (DefaultQueue if
// size <= 0) for h. Wrapping a *Handler returns it as is.
func New(h slog.Handler, size int) *Handler {
	if a, ok := h.(*Handler); ok {
		return a
	}
	if size <= 0 {
		size = DefaultQueue
	}
	q := &queue{records: make(chan entry, size), done: make(chan struct{})}
	go q.write()
	return &Handler{next: h, q: q}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler: it queues r and returns at once. A record
// that finds the queue full is dropped (and counted).
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	q := h.q
	q.closeMu.RLock()
	defer q.closeMu.RUnlock()
	if q.closed {
		q.dropped.Add(1)
		return nil
	}
	e := entry{h: h.next, r: r.Clone(), lostBefore: q.lost.Swap(0)}
	select {
	case q.records <- e:
	default:
		q.dropped.Add(1)
		q.lost.Add(e.lostBefore + 1)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), q: h.q}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), q: h.q}
}

// Dropped returns how many records were dropped so far.
func (h *Handler) Dropped() int64 { return h.q.dropped.Load() }

// Close writes what is queued and stops, waiting at most timeout for a
// blocked output (records still queued then are lost). Records handled
// after Close are dropped. Close is for the handler's creator; it is safe
// to call more than once.
func (h *Handler) Close(timeout time.Duration) {
	q := h.q
	q.closeMu.Lock()
	if !q.closed {
		q.closed = true
		close(q.records)
	}
	q.closeMu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	}
}

func (q *queue) write() {
	defer close(q.done)
	var last slog.Handler
	for e := range q.records {
		reportLost(e.h, e.lostBefore)
		e.h.Handle(context.Background(), e.r)
		last = e.h
	}
	if last != nil {
		reportLost(last, q.lost.Swap(0)) // dropped after the last line written
	}
}

func reportLost(h slog.Handler, n int64) {
	if n > 0 {
		warn := slog.NewRecord(time.Now(), slog.LevelWarn, "log output was blocked: lines dropped", 0)
		warn.AddAttrs(slog.Int64("dropped", n))
		h.Handle(context.Background(), warn)
	}
}
