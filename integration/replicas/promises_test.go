package replicas_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// replicaTimeout is how long a replica's heartbeat must be silent before
// the others declare it dead (docs/replicas.md).
const replicaTimeout = 6 * time.Second

// Three replicas serving at once on one database, 200 nodes spread over
// them by their lists, 50 of them registering at once with one hostname;
// one replica is SIGKILLed in the middle of joins and leaves, and
// PostgreSQL is restarted later. Names and addresses stay unique (the
// lowest free label rule: web, web-1 … web-49); the killed replica's nodes
// move to the others (every online node is homed on a live replica, the
// dead one's row is gone) and none is deleted early; every node that left
// is deleted exactly once; every node still running is online; no event
// number is used twice; the replicas ride out the database restart
// without being restarted, and a node joins after it.
func TestReplicasKeepEveryPromise(t *testing.T) {
	harness.Integration(t)
	pg := pgtest.Start(t)
	cs, db := startReplicas(t, pg, 3, coordtest.Options{EphemeralTimeout: 10 * time.Minute})
	key := cs[0].CreateKey(t, "--ephemeral", "--reusable")
	list := urls(cs)

	// 50 at once with the same hostname, each starting on another replica.
	nodes := make([]*node, 200)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i] = join(t, list, key, "web", i) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	for _, n := range nodes[:50] {
		if names[n.name] || addrs[n.ipv4] {
			t.Fatalf("name %q or address %s given twice", n.name, n.ipv4)
		}
		names[n.name], addrs[n.ipv4] = true, true
	}
	for i := range 50 {
		want := "web"
		if i > 0 {
			want = fmt.Sprint("web-", i)
		}
		if !names[want] {
			t.Fatalf("names %v: want web, web-1 … web-49", names)
		}
	}
	for i := 50; i < 150; i++ {
		nodes[i] = join(t, list, key, fmt.Sprintf("n%d", i), i)
	}

	// One node knows only the replica that will be killed: it cannot
	// move, and goes offline when the others find that replica dead.
	victim, survivor := cs[0], cs[1]
	stranded := join(t, []string{victim.URL}, key, "stranded", 500)
	harness.Eventually(t, 30*time.Second, "the stranded node online", func() (bool, string) {
		n, ok := survivor.Node(t, "stranded")
		return ok && n.Online, fmt.Sprintf("%+v", n)
	})

	// Churn: 50 more join and 50 leave, with one replica killed halfway.
	var left []*node
	var churn sync.WaitGroup
	var killed atomic.Bool
	var killedAt time.Time
	churn.Add(2)
	go func() {
		defer churn.Done()
		for i := 150; i < 200; i++ {
			nodes[i] = join(t, list, key, fmt.Sprintf("n%d", i), i)
		}
	}()
	go func() {
		defer churn.Done()
		for i := 50; i < 100; i++ {
			nodes[i].logout(t)
			left = append(left, nodes[i])
			if i == 75 {
				victim.Kill(t)
				killedAt = time.Now()
				killed.Store(true)
			}
		}
	}()
	churn.Wait()
	if !killed.Load() || t.Failed() {
		t.FailNow()
	}
	staying := append(append([]*node{}, nodes[:50]...), nodes[100:]...)
	online := func() (bool, string) {
		byID := map[meshapi.NodeID]meshapi.Node{}
		ns, err := survivor.Admin().Nodes(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			byID[n.ID] = n
		}
		for _, n := range staying {
			if got, ok := byID[n.id]; !ok || !got.Online {
				return false, fmt.Sprintf("node %s (%d): listed %v, %+v", n.name, n.id, ok, got)
			}
		}
		for _, n := range left {
			if _, ok := byID[n.id]; ok {
				return false, fmt.Sprintf("node %s (%d) logged out but still listed", n.name, n.id)
			}
		}
		return len(ns) == len(staying)+1, fmt.Sprintf("%d nodes listed, want %d and the stranded one", len(ns), len(staying))
	}
	// Moved: the dead replica's row is gone (its takeover ran) and every
	// online node is homed on a replica that lives.
	moved := func() (bool, string) {
		var replicas, strays int
		if err := sql(t, db, `SELECT (SELECT count(*) FROM replicas),
			(SELECT count(*) FROM nodes WHERE online AND home NOT IN (SELECT id FROM replicas))`, &replicas, &strays); err != nil {
			return false, err.Error()
		}
		return replicas == 2 && strays == 0, fmt.Sprintf("%d replicas, %d online nodes homed elsewhere", replicas, strays)
	}
	harness.Eventually(t, 90*time.Second, "every running node online, every leaver gone", online)
	harness.Eventually(t, 90*time.Second, "the dead replica's nodes moved to the live ones", moved)
	// The stranded node is offline, last seen no later than the kill (the
	// dead replica's last heartbeat), and kept: its GC clock runs for the
	// ephemeral timeout from that heartbeat (at most a replica timeout
	// before the kill, or the replica would have been judged dead before).
	harness.Eventually(t, 30*time.Second, "the stranded node offline", func() (bool, string) {
		n, ok := survivor.Node(t, "stranded")
		return ok && !n.Online, fmt.Sprintf("listed %v, %+v", ok, n)
	})
	if n, _ := survivor.Node(t, "stranded"); n.LastSeen.After(killedAt) || n.GCDeadline.Before(killedAt.Add(10*time.Minute-replicaTimeout)) {
		t.Fatalf("stranded node after its replica died: %+v (killed at %v): last seen after the kill, or its deadline early", n, killedAt)
	}

	// PostgreSQL restarts under the running replicas: they recover by
	// themselves, and a new node can join.
	pids := []int{cs[1].Pid(), cs[2].Pid()}
	pg.Restart(t)
	late := join(t, list, key, "late", 1000)
	if late == nil {
		t.FailNow()
	}
	staying = append(staying, late)
	harness.Eventually(t, 90*time.Second, "every running node online after the database restart", online)
	harness.Eventually(t, 90*time.Second, "every online node homed on a live replica after the restart", moved)
	if cs[1].Pid() != pids[0] || cs[2].Pid() != pids[1] {
		t.Errorf("a replica was restarted")
	}

	// The history: one deletion per node that left (reason logout), none
	// for a node that stays, and no event number used twice.
	evs := survivor.Events(t)
	deleted := map[meshapi.NodeID]int{}
	seqs := map[uint64]bool{}
	for _, e := range evs {
		if seqs[e.Seq] {
			t.Errorf("event number %d used twice", e.Seq)
		}
		seqs[e.Seq] = true
		if e.Type == meshapi.EventDeleted {
			deleted[e.NodeID]++
			if e.Reason != meshapi.ReasonLogout {
				t.Errorf("node %d (%s) deleted with reason %s", e.NodeID, e.Name, e.Reason)
			}
		}
	}
	for _, n := range left {
		if deleted[n.id] != 1 {
			t.Errorf("node %s (%d) deleted %d times, want once", n.name, n.id, deleted[n.id])
		}
	}
	for _, n := range append(staying, stranded) {
		if deleted[n.id] != 0 {
			t.Errorf("running node %s (%d) was deleted", n.name, n.id)
		}
	}
}
