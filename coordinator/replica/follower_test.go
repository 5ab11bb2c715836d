package replica

import (
	"context"
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
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			f.Run(ctx, time.Second)
			close(done)
		}()
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
		if err := f.CatchUp(ctx, emptyReader{}); err != nil {
			t.Fatalf("a write's catch-up after the stuck read: %v", err)
		}
		cancel()
		<-done
	})
}
