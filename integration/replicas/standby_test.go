package replicas_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
)

// node is one simulated mesh node: the real control client, registered,
// following its map stream in the background.
type node struct {
	c      *controlclient.Client
	id     meshapi.NodeID
	name   string
	cancel context.CancelFunc
	done   chan struct{} // closed when Follow returned
}

func pubKey(i int) meshapi.Key {
	var k meshapi.Key
	copy(k[:], fmt.Sprintf("replica-test-node-%08d-padding", i))
	return k
}

// join registers node i through the list (rotated so that the nodes start
// on different replicas) and starts following its map.
func join(t *testing.T, list []string, key, host string, i int) *node {
	t.Helper()
	rot := append(append([]string{}, list[i%len(list):]...), list[:i%len(list)]...)
	c, err := controlclient.New(strings.Join(rot, ","), controlclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.Register(ctx, controlclient.Registration{AuthKey: key, Hostname: host, PublicKey: pubKey(i)})
	if err != nil {
		t.Fatalf("node %d: %v", i, err)
	}
	n := &node{c: c, id: resp.Node.ID, name: resp.Node.Name, done: make(chan struct{})}
	fctx, fcancel := context.WithCancel(context.Background())
	n.cancel = fcancel
	go func() {
		defer close(n.done)
		var m controlclient.NetMap
		c.Follow(fctx, &m, func(controlclient.Change, *controlclient.NetMap) {},
			controlclient.FollowOptions{Backoff: controlclient.Backoff{Min: 20 * time.Millisecond, Max: time.Second}})
	}()
	t.Cleanup(func() { fcancel(); <-n.done })
	return n
}

func (n *node) logout(t *testing.T) {
	t.Helper()
	n.cancel()
	<-n.done
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if resp, err := n.c.Logout(ctx); err != nil || !resp.Deleted {
		t.Errorf("logout of %s: %+v, %v", n.name, resp, err)
	}
}

// active returns the replica that serves now (waiting for one).
func active(t *testing.T, cs []*coordtest.Coordinator, not *coordtest.Coordinator) *coordtest.Coordinator {
	t.Helper()
	var a *coordtest.Coordinator
	harness.Eventually(t, 60*time.Second, "a replica is active", func() (bool, string) {
		for _, c := range cs {
			if c != not && c.Active() {
				a = c
				return true, ""
			}
		}
		return false, "all standing by"
	})
	return a
}

// Three replicas on one database, 200 nodes spread over them by their
// lists, 50 of them registering at once with one hostname; the active
// replica is SIGKILLed in the middle of joins and leaves, and PostgreSQL is
// restarted later. Names stay unique; the nodes move to the replica that
// takes over and none is deleted early; every node that left is deleted
// exactly once; every node still running is online; no event number is
// used twice; the replicas ride out the database restart without being
// restarted themselves.
func TestReplicasStandbyTakeoverKeepsEveryPromise(t *testing.T) {
	harness.Integration(t)
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	var cs []*coordtest.Coordinator
	for range 3 {
		// Start one at a time: the first becomes active.
		cs = append(cs, coordtest.Start(t, coordtest.Options{DB: db, Standby: true, EphemeralTimeout: 10 * time.Minute}))
	}
	first := active(t, cs, nil)
	key := first.CreateKey(t, "--ephemeral", "--reusable")
	var list []string
	for _, c := range cs {
		list = append(list, c.URL)
	}

	// 50 at once with the same hostname, each starting on another replica.
	nodes := make([]*node, 200)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i] = join(t, list, key, "web", i) }()
	}
	wg.Wait()
	names := map[string]bool{}
	for _, n := range nodes[:50] {
		if names[n.name] {
			t.Fatalf("name %q given twice", n.name)
		}
		names[n.name] = true
	}
	if !names["web"] || !names["web-49"] || len(names) != 50 {
		t.Fatalf("names %v: want web, web-1 … web-49", names)
	}
	for i := 50; i < 150; i++ {
		nodes[i] = join(t, list, key, fmt.Sprintf("n%d", i), i)
	}

	// Churn: 50 more join and 50 leave, with the active replica killed
	// halfway through.
	var left []*node
	var churn sync.WaitGroup
	var killed atomic.Bool
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
				first.Kill(t)
				killed.Store(true)
			}
		}
	}()
	churn.Wait()
	if !killed.Load() {
		t.Fatal("the active replica was not killed")
	}
	second := active(t, cs, first)
	staying := append(append([]*node{}, nodes[:50]...), nodes[100:]...)
	online := func() (bool, string) {
		byID := map[meshapi.NodeID]meshapi.Node{}
		ns, err := second.Admin().Nodes(context.Background())
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
		return len(ns) == len(staying), fmt.Sprintf("%d nodes listed, want %d", len(ns), len(staying))
	}
	harness.Eventually(t, 90*time.Second, "every running node online on the new active replica, every leaver gone", online)

	// PostgreSQL restarts under the running replicas: they recover by
	// themselves, and a new node can join.
	pg.Restart(t)
	late := join(t, list, key, "late", 1000)
	staying = append(staying, late)
	harness.Eventually(t, 90*time.Second, "every running node online after the database restart", online)
	if a := active(t, cs, first); a != second {
		t.Errorf("the database restart handed the mesh to another replica (%s, was %s)", a.URL, second.URL)
	}

	// The history: one deletion per node that left (reason logout), none
	// for a node that stays, and no event number used twice.
	evs := second.Events(t)
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
	for _, n := range staying {
		if deleted[n.id] != 0 {
			t.Errorf("running node %s (%d) was deleted", n.name, n.id)
		}
	}
}
