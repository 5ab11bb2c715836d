package commit_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// gated is a real SQLite store whose commits wait while the gate is shut,
// as a slow disk makes them.
type gated struct {
	*store.SQLite
	open    chan struct{}
	waiting atomic.Int32 // commits that reached the gate
	applied atomic.Int32
}

func (g *gated) Apply(ctx context.Context, ops []store.Op) error {
	g.waiting.Add(1)
	<-g.open
	g.applied.Add(1)
	return g.SQLite.Apply(ctx, ops)
}

func newGated(t *testing.T) *gated {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &gated{SQLite: st, open: make(chan struct{})}
}

// TestGroupCommitInOrder: ops queued while a commit is in flight go out
// together in the next one, in the order they were queued, and the
// Committed hook sees them before their waiters are released.
func TestGroupCommitInOrder(t *testing.T) {
	st := newGated(t)
	var seen []uint64
	q := commit.New(st, slog.New(slog.DiscardHandler), 100, commit.Hooks{Committed: func(ops []store.Op) {
		for _, op := range ops {
			if e, ok := op.Event(); ok {
				seen = append(seen, e.Seq)
			}
		}
	}})
	go q.Run()
	defer q.Close()
	event := func(seq uint64) store.Op { return store.AddEvent(meshapi.Event{Seq: seq, Type: meshapi.EventOnline}) }
	first := q.Enqueue(event(1))
	// The writer takes event 1 and waits at the gate; these queue behind
	// it and go out together in the next commit.
	deadline := time.Now().Add(10 * time.Second)
	for st.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer never started its first commit")
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	second := q.Enqueue(event(2), event(3))
	if q.Barrier() != second || first == second {
		t.Fatal("Barrier is not the batch of the last ops")
	}
	close(st.open)
	for _, b := range []*commit.Batch{first, second} {
		if err := b.Wait(context.Background(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 3 {
		t.Fatalf("committed in order %v", seen)
	}
	if n := st.applied.Load(); n != 2 {
		t.Fatalf("%d commits for two batches", n)
	}
}

// TestOverloadedAtTheBound: Overloaded says so once maxQueued ops wait,
// and no longer once they are stored.
func TestOverloadedAtTheBound(t *testing.T) {
	st := newGated(t)
	q := commit.New(st, slog.New(slog.DiscardHandler), 3, commit.Hooks{})
	go q.Run()
	defer q.Close()
	q.Enqueue(store.SetMeta("a", "1"), store.SetMeta("b", "1"))
	if full, n := q.Overloaded(); full || n != 2 {
		t.Fatalf("2 of 3 queued: overloaded %v (%d)", full, n)
	}
	b := q.Enqueue(store.SetMeta("c", "1"))
	if full, n := q.Overloaded(); !full || n != 3 {
		t.Fatalf("3 of 3 queued: overloaded %v (%d)", full, n)
	}
	close(st.open)
	if err := b.Wait(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if full, n := q.Overloaded(); full || n != 0 {
		t.Fatalf("after the commit: overloaded %v (%d)", full, n)
	}
}

// TestClosedQueueStoresNothingNew: what was queued before Close is stored;
// a batch that a change joins after Close says it was not.
func TestClosedQueueStoresNothingNew(t *testing.T) {
	st := newGated(t)
	close(st.open)
	q := commit.New(st, slog.New(slog.DiscardHandler), 100, commit.Hooks{})
	go q.Run()
	before := q.Enqueue(store.SetMeta("a", "1"))
	q.Close()
	if err := before.Wait(context.Background(), time.Second); err != nil {
		t.Fatalf("queued before Close: %v", err)
	}
	after := q.Enqueue(store.SetMeta("b", "1"))
	if err := after.Wait(context.Background(), time.Second); !errors.Is(err, commit.ErrClosed) {
		t.Fatalf("queued after Close: %v, want ErrClosed", err)
	}
}
