package replica

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// stalledLog is a change log on a connection whose packets are dropped:
// every read hangs until its context ends. Its watcher wakes the follower
// once, as a listener does when it connects.
type stalledLog struct{}

func (stalledLog) ChangesAfter(ctx context.Context, _ uint64, _ int) ([]store.Change, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (stalledLog) WatchChanges(ctx context.Context, _ time.Duration, wake func(uint64)) {
	wake(0)
	<-ctx.Done()
}

// emptyReader is a write transaction's reader with nothing new to read.
type emptyReader struct{}

func (emptyReader) ChangesAfter(context.Context, uint64, int) ([]store.Change, error) {
	return nil, nil
}

// A read of the follower's loop that hangs is given up after
// followReadTimeout, so the lock it holds is released and this replica's
// writes (which catch up under the same lock) go on; without the bound
// they would wait until TCP gives up. (A goroutine waiting for a mutex is
// not durably blocked for synctest, so the write is tried once the stuck
// read's bound has passed, and must then find the lock free.)
func TestFollowerLoopReadIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		apply := func(store.Change) error { return nil }
		reload := func(context.Context) (uint64, error) { return 0, nil }
		f := NewFollower(stalledLog{}, 0, apply, reload, nil)
		stop := runFollower(f)
		synctest.Wait() // the loop's read is stuck, holding the lock
		if f.mu.TryLock() {
			t.Fatal("the loop's read did not hold the follower's lock: the test stalled nothing")
		}

		time.Sleep(followReadTimeout)
		synctest.Wait() // the stuck read was given up
		if !f.mu.TryLock() {
			t.Fatalf("the follower's lock is still held %v after the read stuck", followReadTimeout)
		}
		f.mu.Unlock()
		if err := f.CatchUp(t.Context(), emptyReader{}); err != nil {
			t.Fatalf("a write's catch-up after the stuck read: %v", err)
		}
		stop()
	})
}

// gatedLog is a change log whose every read waits for the test to let it
// finish, and counts the reads that began.
type gatedLog struct {
	started atomic.Int32
	release chan struct{}
}

func (g *gatedLog) ChangesAfter(ctx context.Context, _ uint64, _ int) ([]store.Change, error) {
	g.started.Add(1)
	select {
	case <-g.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gatedLog) WatchChanges(ctx context.Context, _ time.Duration, _ func(uint64)) { <-ctx.Done() }

// Refresh calls share reads: however many come while one read runs, they
// wait for one more, which begins after all of them were made; each caller
// returns only once a read that began after its call has ended.
func TestRefreshCoalescesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedLog{release: make(chan struct{})}
		f := NewFollower(g, 0, func(store.Change) error { return nil },
			func(context.Context) (uint64, error) { return 0, nil }, nil)
		defer runFollower(f)()
		var first atomic.Bool
		go func() { f.Refresh(t.Context()); first.Store(true) }()
		synctest.Wait()
		if n := g.started.Load(); n != 1 {
			t.Fatalf("%d reads after the first Refresh, want 1", n)
		}

		const later = 50
		var returned atomic.Int32
		for range later {
			go func() { f.Refresh(t.Context()); returned.Add(1) }()
		}
		synctest.Wait()
		if n := g.started.Load(); n != 1 {
			t.Fatalf("%d reads while one ran and %d callers came, want still 1", n, later)
		}

		g.release <- struct{}{} // the first read ends
		synctest.Wait()
		if !first.Load() {
			t.Fatal("the first caller did not return when its read ended")
		}
		if n := returned.Load(); n != 0 {
			t.Fatalf("%d later callers returned on a read that began before they called", n)
		}
		if n := g.started.Load(); n != 2 {
			t.Fatalf("%d reads, want 2: one more for the %d that came meanwhile", n, later)
		}

		g.release <- struct{}{} // their shared read ends
		synctest.Wait()
		if n := returned.Load(); n != later {
			t.Fatalf("%d of %d later callers returned after their read ended", n, later)
		}
		if n := g.started.Load(); n != 2 {
			t.Fatalf("%d reads in all, want 2", n)
		}
	})
}

// A caller whose context ends stops waiting; the read it asked for still
// serves the others.
func TestRefreshReturnsWhenTheCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedLog{release: make(chan struct{})}
		f := NewFollower(g, 0, func(store.Change) error { return nil },
			func(context.Context) (uint64, error) { return 0, nil }, nil)
		defer runFollower(f)()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		f.Refresh(ctx)
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Refresh returned after %v, want at its context's end (1s)", waited)
		}
		g.release <- struct{}{} // the read it asked for ends all the same
		synctest.Wait()
	})
}

// runFollower runs f's loop until the function it returns is called, which
// waits for the loop to end.
func runFollower(f *Follower) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.Run(ctx, time.Second)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}
