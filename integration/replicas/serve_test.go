package replicas_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// A node registers on replica a, holds its map stream on b and logs out on
// c, each call made to that replica alone: b knows the node a registered,
// the node is online for all three while it streams on b, its stream
// carries a node that registered on c, and its logout on c ends its stream
// on b and deletes it once, for all three.
func TestAnyReplicaServesAnyNode(t *testing.T) {
	harness.Integration(t)
	cs, _ := startReplicas(t, pgtest.Shared(t), 3, coordtest.Options{})
	a, b, c := cs[0], cs[1], cs[2]
	key := a.CreateKey(t, "--ephemeral", "--reusable")

	x, secret := register(t, a.URL, key, "x", 1)
	st := openStream(t, b.URL, secret, 0, "")
	harness.Eventually(t, 30*time.Second, "x's full map from b", func() (bool, string) {
		ls := st.got()
		return len(ls) > 0 && ls[0].Type == meshapi.MsgFull && ls[0].Self != nil && ls[0].Self.ID == x.ID, fmt.Sprint(ls)
	})
	for _, r := range cs {
		harness.Eventually(t, 30*time.Second, "x online on "+r.URL, func() (bool, string) {
			n, ok := r.Node(t, "x")
			return ok && n.Online, fmt.Sprintf("%+v", n)
		})
	}
	y, _ := register(t, c.URL, key, "y", 2)
	harness.Eventually(t, 30*time.Second, "y (registered on c) in x's stream on b", func() (bool, string) {
		_, ok := st.peers()[y.ID]
		return ok, fmt.Sprint(st.peers())
	})

	status, body := call(t, http.MethodPost, c.URL, meshapi.PathLogout, secret, nil)
	var out meshapi.LogoutResponse
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil || !out.Deleted {
		t.Fatalf("logout on c: %d %s", status, body)
	}
	harness.Eventually(t, 30*time.Second, "x's stream on b ends", func() (bool, string) { return st.ended(), "open" })
	for _, r := range cs {
		harness.Eventually(t, 30*time.Second, "x gone on "+r.URL, func() (bool, string) {
			_, ok := r.Node(t, "x")
			return !ok, "still listed"
		})
	}
	deleted := 0
	for _, e := range b.Events(t) {
		if e.Type == meshapi.EventDeleted && e.NodeID == x.ID {
			deleted++
		}
	}
	if deleted != 1 {
		t.Fatalf("x deleted %d times in the events, want once", deleted)
	}
}

// Watchers stream on different replicas while nodes register on all of
// them at once: every watcher gets every new node, each at the same
// version on every replica, versions rising (one global order). A stream
// stopped on one replica and resumed on another with since and epoch gets
// what it missed as deltas (after a keepalive at its version), not a full
// map, and misses nothing.
func TestStreamsFollowOneOrderAndResumeOnAnotherReplica(t *testing.T) {
	harness.Integration(t)
	cs, _ := startReplicas(t, pgtest.Shared(t), 3, coordtest.Options{})
	key := cs[0].CreateKey(t, "--ephemeral", "--reusable")
	var watchers []*stream
	var wsecret []string
	for i, r := range cs {
		_, secret := register(t, r.URL, key, fmt.Sprint("watch", i), 100+i)
		wsecret = append(wsecret, secret)
		watchers = append(watchers, openStream(t, r.URL, secret, 0, ""))
	}
	const nodes = 30
	ids := make([]meshapi.NodeID, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _ := register(t, cs[i%3].URL, key, "n", i)
			ids[i] = n.ID
		}()
	}
	wg.Wait()
	// at[w][id] is the version of the line that brought node id to watcher w.
	at := func(w *stream) map[meshapi.NodeID]uint64 {
		m := map[meshapi.NodeID]uint64{}
		for _, l := range w.got() {
			if l.Type == meshapi.MsgUpsert {
				for _, p := range l.Peers {
					if _, seen := m[p.ID]; !seen {
						m[p.ID] = l.Version
					}
				}
			}
		}
		return m
	}
	for i, w := range watchers {
		harness.Eventually(t, 30*time.Second, fmt.Sprint("watcher ", i, " has every node"), func() (bool, string) {
			m := at(w)
			for _, id := range ids {
				if _, ok := m[id]; !ok {
					return false, fmt.Sprintf("node %d missing", id)
				}
			}
			return true, ""
		})
	}
	ref := at(watchers[0])
	for i, w := range watchers {
		var last uint64
		for _, l := range w.got() {
			if l.Version < last {
				t.Errorf("watcher %d: version %d after %d", i, l.Version, last)
			}
			last = l.Version
		}
		for id, v := range at(w) {
			if r, ok := ref[id]; ok && r != v {
				t.Errorf("node %d came at version %d on replica %d, %d on replica 0", id, v, i, r)
			}
		}
	}

	// Watcher 0 stops on replica 0 and resumes on replica 1.
	watchers[0].close()
	ls := watchers[0].got()
	since, epoch := ls[len(ls)-1].Version, ls[0].Epoch
	var missed []meshapi.NodeID
	for i := range 5 {
		n, _ := register(t, cs[2].URL, key, "late", 1000+i)
		missed = append(missed, n.ID)
	}
	resumed := openStream(t, cs[1].URL, wsecret[0], since, epoch)
	harness.Eventually(t, 30*time.Second, "the resumed stream has every missed node", func() (bool, string) {
		m := at(resumed)
		for _, id := range missed {
			if _, ok := m[id]; !ok {
				return false, fmt.Sprintf("node %d missing", id)
			}
		}
		return true, ""
	})
	got := resumed.got()
	if got[0].Type != meshapi.MsgKeepalive || got[0].Version != since {
		t.Fatalf("the resumed stream began with %s at %d, want a keepalive at %d (deltas, not a full map)", got[0].Type, got[0].Version, since)
	}
	for _, l := range got {
		if l.Type == meshapi.MsgFull {
			t.Fatalf("the resumed stream got a full map at %d", l.Version)
		}
	}
}

// Ephemeral nodes streaming on different replicas drop their streams:
// every replica arms a GC timer for every deadline, and each node is
// deleted exactly once (one event, reason gc), never before its deadline
// (its drop plus the timeout).
func TestGCByAnyReplicaDeletesEachNodeOnce(t *testing.T) {
	harness.Integration(t)
	const timeout = 3 * time.Second
	cs, _ := startReplicas(t, pgtest.Shared(t), 3, coordtest.Options{EphemeralTimeout: timeout, ReconnectGrace: time.Second})
	key := cs[0].CreateKey(t, "--ephemeral", "--reusable")
	const nodes = 12
	ids := map[meshapi.NodeID]bool{}
	var streams []*stream
	for i := range nodes {
		r := cs[i%3]
		n, secret := register(t, r.URL, key, "gc", 200+i)
		ids[n.ID] = true
		streams = append(streams, openStream(t, r.URL, secret, 0, ""))
	}
	for _, r := range cs {
		harness.Eventually(t, 30*time.Second, "every node online on "+r.URL, func() (bool, string) {
			online := 0
			for _, n := range r.Nodes(t) {
				if ids[n.ID] && n.Online {
					online++
				}
			}
			return online == nodes, fmt.Sprintf("%d of %d online", online, nodes)
		})
	}
	dropped := time.Now()
	for _, st := range streams {
		st.close()
	}
	var evs []meshapi.Event
	harness.Eventually(t, 60*time.Second, "every node collected", func() (bool, string) {
		evs = cs[1].Events(t)
		gone := 0
		for _, e := range evs {
			if e.Type == meshapi.EventDeleted && ids[e.NodeID] {
				gone++
			}
		}
		return gone >= nodes, fmt.Sprintf("%d of %d deleted", gone, nodes)
	})
	deleted := map[meshapi.NodeID]int{}
	for _, e := range evs {
		if e.Type != meshapi.EventDeleted || !ids[e.NodeID] {
			continue
		}
		deleted[e.NodeID]++
		if e.Reason != meshapi.ReasonGC || e.Time.Before(dropped.Add(timeout)) {
			t.Errorf("node %d deleted at %v (reason %s): before its deadline (dropped at %v + %v), or not by GC",
				e.NodeID, e.Time, e.Reason, dropped, timeout)
		}
	}
	for id := range ids {
		if deleted[id] != 1 {
			t.Errorf("node %d deleted %d times, want once", id, deleted[id])
		}
	}
	for _, r := range cs {
		harness.Eventually(t, 30*time.Second, "no collected node listed on "+r.URL, func() (bool, string) {
			for _, n := range r.Nodes(t) {
				if ids[n.ID] {
					return false, fmt.Sprintf("node %d still listed", n.ID)
				}
			}
			return true, ""
		})
	}
}
