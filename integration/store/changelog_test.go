package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/coordinator/store/storetest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
)

// writeOps writes one change of ops taking versions versions, failing t
// on an error.
func writeOps(t *testing.T, s *store.Postgres, versions uint64, ops ...store.Op) store.Change {
	t.Helper()
	c, err := tryOps(s, versions, ops...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryOps writes one change of ops taking versions versions.
func tryOps(s *store.Postgres, versions uint64, ops ...store.Op) (store.Change, error) {
	return s.WriteChange(context.Background(), store.NoPrefetch, func(context.Context, store.ChangeReader, uint64) ([]store.Op, uint64, error) {
		return ops, versions, nil
	})
}

func openReplica(t *testing.T, url string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tail follows the log as a replica does: on every wake-up it reads what
// follows its cursor. It fails the test on a gap or a repeat.
type tail struct {
	mu      sync.Mutex
	cursor  uint64
	changes []store.Change
	err     error
}

func (tl *tail) catchUp(ctx context.Context, s *store.Postgres) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for tl.err == nil {
		cs, err := s.ChangesAfter(ctx, tl.cursor, 100)
		if err != nil {
			// The server may be restarting: the next wake-up tries again.
			// A gap, though, is a broken log.
			if errors.Is(err, store.ErrLogGap) {
				tl.err = err
			}
			return
		}
		if len(cs) == 0 {
			return
		}
		for _, c := range cs {
			if c.First != tl.cursor+1 {
				tl.err = fmt.Errorf("change at %d after cursor %d", c.First, tl.cursor)
				return
			}
			tl.cursor = c.Last()
			tl.changes = append(tl.changes, c)
		}
	}
}

func (tl *tail) snapshot() (uint64, int, error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.cursor, len(tl.changes), tl.err
}

// Many writers on several replicas, each widening the window between
// taking its version and committing; readers that tail the log while it
// grows, woken by notifications and polls. Every reader sees every change
// exactly once, in one order, without a gap: no committed change is
// skipped, whatever order the transactions commit in.
func TestChangeLogConcurrentWritersNoChangeSkipped(t *testing.T) {
	harness.Integration(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg := pgtest.Shared(t)
	url := pg.NewDatabase(t)
	const replicas, writersPer, writes = 3, 3, 40
	var stores []*store.Postgres
	for range replicas {
		stores = append(stores, openReplica(t, url))
	}
	tails := make([]*tail, replicas)
	var watchers sync.WaitGroup
	for i, s := range stores {
		tails[i] = &tail{}
		wake := make(chan struct{}, 1)
		watchers.Add(2)
		go func() {
			defer watchers.Done()
			s.WatchChanges(ctx, 200*time.Millisecond, func(uint64) {
				select {
				case wake <- struct{}{}:
				default:
				}
			})
		}()
		go func() {
			defer watchers.Done()
			for ctx.Err() == nil {
				select {
				case <-wake:
					tails[i].catchUp(ctx, s)
				case <-ctx.Done():
				}
			}
		}()
	}
	var wg sync.WaitGroup
	var total sync.Map // first version -> versions
	for r, s := range stores {
		for w := range writersPer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range writes {
					name := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					n := uint64(1 + rand.IntN(3))
					c, err := s.WriteChange(ctx, store.NoPrefetch, func(ctx context.Context, _ store.ChangeReader, last uint64) ([]store.Op, uint64, error) {
						// Hold the lock a little while others wait on it.
						time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
						return []store.Op{store.SetMeta(name, fmt.Sprint(last))}, n, nil
					})
					if err != nil {
						t.Errorf("write %s: %v", name, err)
						return
					}
					total.Store(c.First, c.Versions)
				}
			}()
		}
	}
	wg.Wait()
	var want uint64
	var count int
	total.Range(func(_, v any) bool { want += v.(uint64); count++; return true })
	if count != replicas*writersPer*writes {
		t.Fatalf("%d changes committed, want %d", count, replicas*writersPer*writes)
	}
	for i, tl := range tails {
		harness.Eventually(t, 30*time.Second, fmt.Sprintf("replica %d has read every change", i), func() (bool, string) {
			cursor, n, err := tl.snapshot()
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			return cursor == want && n == count, fmt.Sprintf("cursor %d of %d, %d of %d changes", cursor, want, n, count)
		})
	}
	// One order for everyone, and each change's ops as written: every
	// change saw the version before it as the last one.
	for i, c := range tails[0].changes {
		name, value, ok := c.Ops[0].Meta()
		if !ok || value != fmt.Sprint(c.First-1) {
			t.Fatalf("change %d (%s=%s): decided on version %s, committed at %d", i, name, value, value, c.First)
		}
		for r := 1; r < replicas; r++ {
			if n2, _, _ := tails[r].changes[i].Ops[0].Meta(); n2 != name {
				t.Fatalf("replicas disagree on change %d: %s and %s", i, name, n2)
			}
		}
	}
	cancel()
	watchers.Wait()
}

// A decision that fails writes nothing and takes no version.
func TestChangeLogFailedDecisionWritesNothing(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Shared(t)
	s := openReplica(t, pg.NewDatabase(t))
	boom := errors.New("refused")
	_, err := s.WriteChange(ctx, store.NoPrefetch, func(context.Context, store.ChangeReader, uint64) ([]store.Op, uint64, error) {
		return []store.Op{store.SetMeta("x", "1")}, 1, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	// A failing op (a duplicate name) rolls the change back too.
	n := storetest.SampleNode(1, "web", "100.64.0.1")
	dup := storetest.SampleNode(2, "web", "100.64.0.2")
	writeOps(t, s, 3, store.PutNode(n))
	if _, err := tryOps(s, 1, store.SetMeta("y", "1"), store.PutNode(dup)); err == nil {
		t.Fatal("a duplicate name was written")
	}
	last, err := s.LastVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.ChangesAfter(ctx, 0, 10)
	if err != nil || len(cs) != 1 || last != cs[0].Last() {
		t.Fatalf("changes %+v, last %d, %v; want only the good one", cs, last, err)
	}
	snap, err := s.Load(ctx)
	if err != nil || len(snap.Nodes) != 1 || snap.Meta["x"] != "" || snap.Meta["y"] != "" {
		t.Fatalf("state after refused writes: %+v, %v", snap, err)
	}
	// A cursor inside a change is not one the log continues from.
	writeOps(t, s, 1, store.SetMeta("z", "1"))
	if _, err := s.ChangesAfter(ctx, cs[0].First, 10); !errors.Is(err, store.ErrLogGap) {
		t.Fatalf("reading from inside a change: %v; want ErrLogGap", err)
	}
}

// The listener rides out a restart of the server: after it, a change
// written on another replica still wakes it (its reconnect wakes it, and
// notifications flow again).
func TestChangeLogWatchSurvivesServerRestart(t *testing.T) {
	harness.Integration(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	reader, writer := openReplica(t, url), openReplica(t, url)
	var tl tail
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A long poll: what wakes the reader is the notification or the
		// reconnect, not the timer.
		reader.WatchChanges(ctx, time.Minute, func(uint64) { tl.catchUp(ctx, reader) })
	}()
	write := func(name string) {
		harness.Eventually(t, 30*time.Second, "writing "+name, func() (bool, string) {
			_, err := tryOps(writer, 1, store.SetMeta(name, "1"))
			return err == nil, fmt.Sprint(err)
		})
	}
	seen := func(n int) {
		harness.Eventually(t, 30*time.Second, fmt.Sprintf("the reader has %d changes", n), func() (bool, string) {
			_, got, err := tl.snapshot()
			return got == n && err == nil, fmt.Sprintf("%d changes, %v", got, err)
		})
	}
	write("before")
	seen(1)
	pg.Kill(t)
	pg.Resume(t)
	write("after")
	seen(2)
	cancel()
	<-done
}

// Retention keeps the newest versions, and always the newest change, so
// the log's last version survives; a cursor older than what is kept is a
// gap (the replica reloads), a newer one reads on.
func TestChangeLogPruneKeepsTheNewest(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	s := openReplica(t, pgtest.Shared(t).NewDatabase(t))
	var cs []store.Change
	for i := range 10 {
		cs = append(cs, writeOps(t, s, 2, store.SetMeta(fmt.Sprint("k", i), "v")))
	}
	last := cs[9].Last() // 20
	// Keep 5 versions: changes ending at 15 or later stay (the last three).
	n, err := s.PruneChanges(ctx, 5, 3)
	if err != nil || n != 3 {
		t.Fatalf("first prune: %d, %v; want 3 (the limit)", n, err)
	}
	if n, err = s.PruneChanges(ctx, 5, 100); err != nil || n != 4 {
		t.Fatalf("second prune: %d, %v; want 4", n, err)
	}
	if _, err := s.ChangesAfter(ctx, 0, 100); !errors.Is(err, store.ErrLogGap) {
		t.Fatalf("reading from the start after pruning: %v; want ErrLogGap", err)
	}
	rest, err := s.ChangesAfter(ctx, cs[6].Last(), 100)
	if err != nil || len(rest) != 3 || rest[2].Last() != last {
		t.Fatalf("reading what is kept: %+v, %v", rest, err)
	}
	if n, err = s.PruneChanges(ctx, 0, 100); err != nil || n != 2 {
		t.Fatalf("pruning to nothing: %d, %v; want 2 (the newest stays)", n, err)
	}
	if v, err := s.LastVersion(ctx); err != nil || v != last {
		t.Fatalf("last version after pruning: %d, %v; want %d", v, err, last)
	}
}

// A node without IPv6 (registered with no_ipv6) crosses the change log as
// one: another replica reads it back without an address, as its table row
// (NULL) loads, and two such nodes coexist.
func TestChangeLogCarriesANodeWithoutIPv6(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	w, r := openReplica(t, url), openReplica(t, url)
	a, b := storetest.SampleNode(1, "v4a", "100.64.0.1"), storetest.SampleNode(2, "v4b", "100.64.0.2")
	a.IPv6, b.IPv6 = netip.Addr{}, netip.Addr{}
	with := storetest.SampleNode(3, "both", "100.64.0.3")
	writeOps(t, w, 1, store.PutNode(a), store.PutNode(b), store.PutNode(with))
	cs, err := r.ChangesAfter(ctx, 0, 10)
	if err != nil || len(cs) != 1 || len(cs[0].Ops) != 3 {
		t.Fatalf("the other replica read %+v, %v; want one change of 3 ops", cs, err)
	}
	for i, want := range []store.NodeRecord{a, b, with} {
		got, ok := cs[0].Ops[i].Node()
		if !ok || got.IPv6 != want.IPv6 || got.IPv4 != want.IPv4 {
			t.Errorf("op %d from the log: %+v (a node: %v); want ipv4 %v, ipv6 %v", i, got, ok, want.IPv4, want.IPv6)
		}
	}
	snap, err := r.Load(ctx)
	if err != nil || len(snap.Nodes) != 3 {
		t.Fatalf("load: %+v, %v", snap, err)
	}
	if snap.Nodes[0].IPv6.IsValid() || snap.Nodes[1].IPv6.IsValid() || snap.Nodes[2].IPv6 != with.IPv6 {
		t.Errorf("loaded IPv6: %v, %v, %v; want none, none, %v", snap.Nodes[0].IPv6, snap.Nodes[1].IPv6, snap.Nodes[2].IPv6, with.IPv6)
	}
}
