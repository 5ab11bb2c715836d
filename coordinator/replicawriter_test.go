package coordinator

import (
	"errors"
	"slices"
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

// A write that fails before deciding (the database is away) puts its
// requests back in front of the queue, in order, without those whose
// caller gave up; a later write takes them with what came meanwhile.
func TestReplicaWriterRetriesUndecidedRequestsInOrder(t *testing.T) {
	var mu sync.Mutex
	var writes [][]*writeReq
	var away atomic.Bool
	away.Store(true)
	w := newReplicaWriter(100, func(reqs []*writeReq) bool {
		mu.Lock()
		writes = append(writes, append([]*writeReq(nil), reqs...))
		mu.Unlock()
		if away.Load() {
			return true
		}
		for _, r := range reqs {
			if r.take() {
				close(r.decided)
				r.batch.Finish(nil)
			}
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
		n := len(writes)
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
		t.Fatal("b was taken by a write that decided nothing")
	}
	w.enqueue(c, false)
	away.Store(false)
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
	for _, reqs := range writes {
		seenA := false
		for _, r := range reqs {
			seenA = seenA || r == a
			if r == c && !seenA && slices.Contains(reqs, a) {
				t.Fatal("c was queued after a but written before it")
			}
		}
	}
}

// A queue at its bound refuses requests (a retryable 503) but not the
// replica's own changes (force); once closed, what is left fails.
func TestReplicaWriterBoundAndClose(t *testing.T) {
	w := newReplicaWriter(1, func([]*writeReq) bool { return true })
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
