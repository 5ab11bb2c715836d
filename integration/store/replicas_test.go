package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
)

// A replica that stops beating is dead on the database's clock once its
// last heartbeat is older than the timeout; one that beats is not. The
// change that takes a dead replica's nodes over removes its row, and the
// dead replica, should it come back, learns from its next heartbeat that
// it was declared dead.
func TestReplicasHeartbeatExpiryAndRemoval(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url := pg.NewDatabase(t)
	a, b := openReplica(t, url), openReplica(t, url)
	if err := a.JoinReplicas(ctx, "http://a"); err != nil {
		t.Fatal(err)
	}
	if err := b.JoinReplicas(ctx, "http://b"); err != nil {
		t.Fatal(err)
	}
	all, err := b.Replicas(ctx)
	if err != nil || len(all) != 2 || all[0].ID != a.Instance() || all[1].URL != "http://b" {
		t.Fatalf("replicas %+v, %v", all, err)
	}
	const timeout = 500 * time.Millisecond
	harness.Eventually(t, 20*time.Second, "a (silent) is dead and b (beating) is not", func() (bool, string) {
		if alive, err := b.Heartbeat(ctx); !alive || err != nil {
			t.Fatalf("b's heartbeat: %v, %v", alive, err)
		}
		dead, err := b.DeadReplicas(ctx, timeout)
		if err != nil {
			return false, err.Error()
		}
		return len(dead) == 1 && dead[0].ID == a.Instance(), fmt.Sprintf("dead: %+v", dead)
	})
	writeOps(t, b, 1, store.RemoveReplica(a.Instance(), time.Time{}))
	if alive, err := a.Heartbeat(ctx); alive || err != nil {
		t.Fatalf("a's heartbeat after it was removed: alive=%v, %v; want false", alive, err)
	}
	if dead, err := b.DeadReplicas(ctx, timeout); err != nil || len(dead) != 0 {
		t.Fatalf("dead after the removal: %+v, %v", dead, err)
	}
}

// A snapshot says which change it includes, so a replica starting from it
// follows the log from exactly there.
func TestSnapshotCarriesItsLogVersion(t *testing.T) {
	harness.Integration(t)
	ctx := context.Background()
	pg := pgtest.Shared(t)
	s := openReplica(t, pg.NewDatabase(t))
	var last store.Change
	for i := range 3 {
		last = writeOps(t, s, 2, store.SetMeta(fmt.Sprint("k", i), "v"))
	}
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.LogVersion != last.Last() || len(snap.Meta) != 3 {
		t.Fatalf("snapshot at version %d with %d settings; want %d and 3", snap.LogVersion, len(snap.Meta), last.Last())
	}
	if more, err := s.ChangesAfter(ctx, snap.LogVersion, 10); err != nil || len(more) != 0 {
		t.Fatalf("changes after the snapshot: %+v, %v", more, err)
	}
}
