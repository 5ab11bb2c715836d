package coordinator

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
)

func newReq() *writeReq {
	return &writeReq{decided: make(chan struct{}), batch: commit.NewBatch(),
		cmd: func(*mesh.Mesh, time.Time) (mesh.Change, *apiError) { return nil, nil }}
}

// A write that fails before it takes the requests (the database is away)
// leaves them queued; the next one takes, in order, every request queued
// by then whose caller still waits.
func TestReplicaWriterTakesWhatIsQueuedInOrder(t *testing.T) {
	var mu sync.Mutex
	var attempts int
	var took [][]*writeReq
	var away atomic.Bool
	away.Store(true)
	var w *replicaWriter
	w = newReplicaWriter(100, func() bool {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if away.Load() {
			return true
		}
		reqs := w.take()
		took = append(took, reqs)
		for _, r := range reqs {
			close(r.decided)
			r.batch.Finish(nil)
		}
		return false
	})
	go w.run()
	defer w.close()
	a, b, c := newReq(), newReq(), newReq()
	w.enqueue(a, false)
	w.enqueue(b, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := attempts
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write attempted")
		}
		time.Sleep(time.Millisecond) // polling, bounded by the deadline
	}
	if !b.abandon() {
		t.Fatal("b was taken by a write that failed before taking")
	}
	w.enqueue(c, false)
	mu.Lock()
	away.Store(false)
	mu.Unlock()
	for _, r := range []*writeReq{a, c} {
		select {
		case <-r.decided:
		case <-time.After(10 * time.Second):
			t.Fatal("a request was never written")
		}
	}
	select {
	case <-b.decided:
		t.Fatal("an abandoned request was written")
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(took) != 1 || len(took[0]) != 2 || took[0][0] != a || took[0][1] != c {
		t.Fatalf("writes took %v, want one write of a then c", took)
	}
}

// A queue at its bound refuses requests (a retryable 503) but not the
// replica's own changes (force); once closed, what is left fails.
func TestReplicaWriterBoundAndClose(t *testing.T) {
	w := newReplicaWriter(1, func() bool { return true })
	first := newReq()
	if e := w.enqueue(first, false); e != nil {
		t.Fatal(e)
	}
	if e := w.enqueue(newReq(), false); e == nil || e.Status != 503 {
		t.Fatalf("over the bound: %v, want a 503", e)
	}
	if e := w.enqueue(newReq(), true); e != nil {
		t.Fatalf("a forced request refused: %v", e)
	}
	go w.run()
	w.close()
	select {
	case <-first.decided:
	default:
		t.Fatal("a request queued at close was left waiting")
	}
	if err := first.batch.Wait(t.Context(), time.Second); !errors.Is(err, errWriterClosed) {
		t.Fatalf("closed: %v, want errWriterClosed", err)
	}
	if e := w.enqueue(newReq(), true); e == nil {
		t.Fatal("a closed writer took a request")
	}
}
