package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meshinit/meshinit/coordinator/replica"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
)

// applied records what a replica's memory received, in order.
type applied struct {
	mu  sync.Mutex
	got []uint64 // First of each change
}

func (a *applied) apply(c store.Change) error {
	a.mu.Lock()
	a.got = append(a.got, c.First)
	a.mu.Unlock()
	return nil
}

func (a *applied) firsts() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.got...)
}

func noReload(t *testing.T) func(context.Context) (uint64, error) {
	return func(context.Context) (uint64, error) {
		t.Error("reload called on a log without gaps")
		return 0, fmt.Errorf("unexpected reload")
	}
}

// Two replicas write at once: each catches up inside each write (from the
// changes read with the lock, then the table) and takes its own change
// after the commit, while its follower loop reads the same log. Both
// memories get every change once, in the same order, however the paths
// race.
func TestFollowerAppliesEveryChangeOnceInOrder(t *testing.T) {
	harness.Integration(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.Shared(t).NewDatabase(t)
	a, b := openReplica(t, url), openReplica(t, url)
	var memA, memB applied
	fa := replica.NewFollower(a, 0, memA.apply, noReload(t), nil)
	fb := replica.NewFollower(b, 0, memB.apply, noReload(t), nil)
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); fa.Run(ctx, 50*time.Millisecond) }()
	go func() { defer loops.Done(); fb.Run(ctx, 50*time.Millisecond) }()

	const writes = 150
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, s, mem := fa, a, &memA
			if w == 1 {
				f, s, mem = fb, b, &memB
			}
			for i := range writes / 3 {
				_, ran, err := f.Write(ctx, s, func(last uint64) ([]store.Op, uint64, error) {
					return []store.Op{store.SetMeta(fmt.Sprintf("w%d-%d", w, i), "v")}, 1 + uint64(i%2), nil
				}, func(c store.Change, err error) error {
					if err == nil {
						return mem.apply(c)
					}
					return nil
				})
				if err != nil || !ran {
					t.Error(ran, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last, err := a.LastVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, "both replicas hold the whole log", func() (bool, string) {
		return fa.Cursor() == last && fb.Cursor() == last, fmt.Sprintf("a at %d, b at %d, log at %d", fa.Cursor(), fb.Cursor(), last)
	})
	ga, gb := memA.firsts(), memB.firsts()
	if len(ga) != writes || fmt.Sprint(ga) != fmt.Sprint(gb) {
		t.Fatalf("a applied %d changes, b %d, or in another order:\n%v\n%v", len(ga), len(gb), ga, gb)
	}
	for i := 1; i < len(ga); i++ {
		if ga[i] <= ga[i-1] {
			t.Fatalf("change %d applied after %d", ga[i], ga[i-1])
		}
	}
	cancel()
	loops.Wait()
}

// A replica that cannot follow the log from its cursor (the changes it
// missed were deleted) reloads its state once and follows from there.
func TestFollowerReloadsWhenItFellBehindTheLog(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	s := openReplica(t, url)
	write := func(name string) store.Change { return writeOps(t, s, 1, store.SetMeta(name, "v")) }
	for i := range 5 {
		write(fmt.Sprint("old", i))
	}
	// Retention took the first three.
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `DELETE FROM changes WHERE first <= 3`); err != nil {
		t.Fatal(err)
	}
	var mem applied
	var reloads atomic.Int32
	f := replica.NewFollower(s, 1, mem.apply, func(ctx context.Context) (uint64, error) {
		reloads.Add(1)
		snap, err := s.Load(ctx)
		if err != nil {
			return 0, err
		}
		return snap.LogVersion, nil
	}, nil)
	if err := f.CatchUp(ctx, s); err != nil {
		t.Fatal(err)
	}
	if reloads.Load() != 1 || f.Cursor() != 5 || len(mem.firsts()) != 0 {
		t.Fatalf("after a gap: %d reloads, cursor %d, applied %v; want 1 reload to version 5", reloads.Load(), f.Cursor(), mem.firsts())
	}
	c := write("new")
	if err := f.CatchUp(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := mem.firsts(); len(got) != 1 || got[0] != c.First {
		t.Fatalf("after the reload: applied %v, want [%d]", got, c.First)
	}
}

// A replica that stops beating is found dead by one that beats; after a
// restart of the database, whose outage made every heartbeat stale, no
// live replica is declared dead; a replica whose row was removed learns
// it was evicted.
func TestLivenessDeadEvictedAndDatabaseRestart(t *testing.T) {
	harness.Integration(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	a, b := openReplica(t, url), openReplica(t, url)
	for _, s := range []*store.Postgres{a, b} {
		if err := s.JoinReplicas(ctx, "http://"+s.Instance()); err != nil {
			t.Fatal(err)
		}
	}
	const interval, timeout = 100 * time.Millisecond, 600 * time.Millisecond
	var deadSeen sync.Map // replica id -> times declared dead
	var evicted atomic.Int32
	remove := func(s *store.Postgres) func(context.Context, []store.Replica) {
		return func(ctx context.Context, dead []store.Replica) {
			var ops []store.Op
			for _, r := range dead {
				n, _ := deadSeen.LoadOrStore(r.ID, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				ops = append(ops, store.RemoveReplica(r.ID, r.Heartbeat))
			}
			tryOps(s, 1, ops...)
		}
	}
	run := func(s *store.Postgres) context.CancelFunc {
		lctx, stop := context.WithCancel(ctx)
		l := &replica.Liveness{Interval: interval, Timeout: timeout, Dead: remove(s), Evicted: func(ctx context.Context) {
			evicted.Add(1)
			s.JoinReplicas(ctx, "http://"+s.Instance())
		}}
		go l.Run(lctx, s)
		return stop
	}
	run(a)
	stopB := run(b)

	// Both beat: after a database restart longer than the timeout, both
	// are stale at once, and neither may be declared dead.
	harness.Eventually(t, 20*time.Second, "both replicas beating", func() (bool, string) {
		rs, err := a.Replicas(ctx)
		return err == nil && len(rs) == 2, fmt.Sprint(rs, err)
	})
	pg.Kill(t)
	down := time.Now()
	harness.Eventually(t, 20*time.Second, "the outage outlasts the timeout", func() (bool, string) {
		return time.Since(down) > 2*timeout, "waiting"
	})
	pg.Resume(t)
	beatsAfter := func(s *store.Postgres, since time.Time) func() (bool, string) {
		return func() (bool, string) {
			rs, err := s.Replicas(ctx)
			if err != nil || len(rs) != 2 {
				return false, fmt.Sprint(rs, err)
			}
			for _, r := range rs {
				if r.Heartbeat.Before(since) {
					return false, fmt.Sprintf("%s last beat %v", r.ID, r.Heartbeat)
				}
			}
			return true, ""
		}
	}
	back := time.Now()
	harness.Eventually(t, 30*time.Second, "both beating again", beatsAfter(a, back))
	// Long enough for a sweep to run: each replica judges once its own
	// beats have run unbroken for the timeout.
	again := time.Now().Add(3 * timeout)
	harness.Eventually(t, 30*time.Second, "both beating well after the restart", beatsAfter(a, again))
	deadSeen.Range(func(k, v any) bool {
		t.Errorf("replica %v declared dead %d times across a database restart", k, v.(*atomic.Int32).Load())
		return true
	})

	// b stops beating: a declares it dead and removes it, once.
	stopB()
	harness.Eventually(t, 20*time.Second, "b declared dead", func() (bool, string) {
		n, ok := deadSeen.Load(b.Instance())
		return ok && n.(*atomic.Int32).Load() >= 1, "not yet"
	})
	// b comes back: its row is gone, it learns so and joins again.
	run(b)
	harness.Eventually(t, 20*time.Second, "b learns it was evicted", func() (bool, string) {
		return evicted.Load() >= 1, "not yet"
	})
	if n, _ := deadSeen.Load(a.Instance()); n != nil {
		t.Errorf("a, which never stopped, was declared dead")
	}
}
