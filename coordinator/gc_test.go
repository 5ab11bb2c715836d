package coordinator

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// The timing rules of presence and GC, on the fake clock: every deadline
// is checked to the nanosecond (nothing happens one nanosecond before it,
// and it happens exactly at it), in no real time.

func deletedEvent(e *env, id meshapi.NodeID) meshapi.Event {
	e.t.Helper()
	return e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == id })
}

func offlineEvent(e *env, id meshapi.NodeID) meshapi.Event {
	e.t.Helper()
	return e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOffline && ev.NodeID == id })
}

// at checks that an event happened exactly at want.
func at(t *testing.T, what string, ev meshapi.Event, want time.Time) {
	t.Helper()
	if !ev.Time.Equal(want) {
		t.Fatalf("%s at %s, want exactly %s (%v off)", what, ev.Time.Format(time.StampNano), want.Format(time.StampNano), ev.Time.Sub(want))
	}
}

// advanceTo moves the clock to one nanosecond before deadline, checks that
// the node is still as before (listed, and online if it was), then moves
// it to the deadline itself.
func (e *env) advanceTo(deadline time.Time, id meshapi.NodeID) {
	e.t.Helper()
	before, ok := e.node(id)
	if !ok {
		e.t.Fatalf("node %d is gone before %s", id, deadline)
	}
	e.clock.AdvanceTo(deadline.Add(-time.Nanosecond))
	if n, ok := e.node(id); !ok || n.Online != before.Online {
		e.t.Fatalf("node %d changed a nanosecond before %s: %+v (listed %v)", id, deadline.Format(time.StampNano), n, ok)
	}
	e.clock.AdvanceTo(deadline)
}

func (e *env) node(id meshapi.NodeID) (meshapi.Node, bool) {
	e.t.Helper()
	var v meshapi.Node
	ok := false
	e.s.read(func(m *mesh.Mesh) {
		if n := m.Node(id); n != nil {
			v, ok = n.View(), true
		}
	})
	return v, ok
}

// drop closes n's stream from the client side and waits until the server
// noticed; it returns the server's time of the drop.
func (e *env) drop(n *client) time.Time {
	e.t.Helper()
	n.strm.close()
	e.streamGone(n)
	return e.now()
}

func TestGCNeverConnectedCountsFromRegistration(t *testing.T) {
	const timeout = 90 * time.Second
	e := newEnv(t, Config{EphemeralTimeout: timeout})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "lost")
	deadline := n.reg.Node.Created.Add(timeout)
	if !n.reg.Node.GCDeadline.Equal(deadline) {
		t.Fatalf("deadline %s, want created+%v", n.reg.Node.GCDeadline, timeout)
	}
	e.advanceTo(deadline, n.id())
	ev := deletedEvent(e, n.id())
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("reason %q", ev.Reason)
	}
	at(t, "deletion", ev, deadline)
}

func TestGCAfterDropWithKeyTimeout(t *testing.T) {
	const grace, keyTimeout = 5 * time.Second, 2 * time.Minute
	// The server default is long: the key's own timeout must win.
	e := newEnv(t, Config{EphemeralTimeout: time.Hour, ReconnectGrace: grace})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, EphemeralTimeout: meshapi.Duration(keyTimeout)})
	n := e.register(k.Key, "job")
	e.advance(time.Minute) // online for a while
	n.connect("").next(wait)
	if v, _ := e.node(n.id()); !v.Online || !v.GCDeadline.IsZero() {
		t.Fatalf("online node: %+v (an online node has no deadline)", v)
	}
	dropped := e.drop(n)
	// Within the grace it still counts as online, with no deadline.
	e.advanceTo(dropped.Add(grace), n.id())
	at(t, "offline", offlineEvent(e, n.id()), dropped.Add(grace))
	v, _ := e.node(n.id())
	if !v.LastSeen.Equal(dropped) || !v.GCDeadline.Equal(dropped.Add(keyTimeout)) {
		t.Fatalf("offline node: last_seen %s deadline %s; want the drop %s and drop + %v", v.LastSeen, v.GCDeadline, dropped, keyTimeout)
	}
	e.advanceTo(v.GCDeadline, n.id())
	at(t, "deletion", deletedEvent(e, n.id()), dropped.Add(keyTimeout))
}

func TestReconnectClearsDeadline(t *testing.T) {
	const grace, timeout = 5 * time.Second, time.Minute
	e := newEnv(t, Config{EphemeralTimeout: timeout, ReconnectGrace: grace})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "flappy")
	n.connect("").next(wait)
	first := e.drop(n)
	e.advance(grace)
	offlineEvent(e, n.id())
	// Back online before the deadline: no deadline while online...
	e.advance(timeout / 2)
	n.connect("").next(wait)
	if v, _ := e.node(n.id()); !v.Online || !v.GCDeadline.IsZero() {
		t.Fatalf("after reconnect: %+v", v)
	}
	// ...and held well past the old deadline, it is still there.
	e.advance(10 * timeout)
	if v, ok := e.node(n.id()); !ok || !v.Online {
		t.Fatalf("an online node changed after its old deadline %s: %+v", first.Add(timeout), v)
	}
	// A new drop sets a new deadline from the new drop.
	second := e.drop(n)
	e.advance(grace)
	v, _ := e.node(n.id())
	if !v.LastSeen.Equal(second) || !v.GCDeadline.Equal(second.Add(timeout)) {
		t.Fatalf("second drop: last_seen %s deadline %s, want %s and + %v", v.LastSeen, v.GCDeadline, second, timeout)
	}
	e.advanceTo(v.GCDeadline, n.id())
	at(t, "deletion", deletedEvent(e, n.id()), second.Add(timeout))
}

// TestRestartKeepsDeadlines restarts the coordinator (same SQLite file)
// while one node is offline with a deadline and another is online:
// the first keeps its deadline; the second is counted from the restart.
func TestRestartKeepsDeadlines(t *testing.T) {
	const grace, timeout = 5 * time.Second, 2 * time.Minute
	e := newEnv(t, Config{EphemeralTimeout: timeout, ReconnectGrace: grace})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	idle := e.register(k.Key, "idle") // never connects: deadline = created + timeout
	live := e.register(k.Key, "live")
	live.connect("").next(wait)
	e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOnline && ev.NodeID == live.id() })

	e.advance(time.Minute)
	e.stop()
	e.advance(10 * time.Second) // down for a while
	restarted := e.now()
	e.start()
	if v, ok := e.node(idle.id()); !ok || !v.GCDeadline.Equal(idle.reg.Node.GCDeadline) {
		t.Fatalf("idle after restart: %+v (deadline must be the stored one, %s)", v, idle.reg.Node.GCDeadline)
	}
	if v, ok := e.node(live.id()); !ok || !v.Online || !v.GCDeadline.IsZero() {
		t.Fatalf("live after restart: %+v; want online for a grace, no deadline", v)
	}
	e.advanceTo(idle.reg.Node.GCDeadline, idle.id())
	at(t, "idle deletion", deletedEvent(e, idle.id()), idle.reg.Node.GCDeadline)
	// live was online when the coordinator went down: online for one grace
	// from the restart, then offline, and collected at restart + timeout.
	e.advanceTo(restarted.Add(grace), live.id())
	at(t, "live offline", offlineEvent(e, live.id()), restarted.Add(grace))
	e.advanceTo(restarted.Add(timeout), live.id())
	ev := deletedEvent(e, live.id())
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("live deleted with reason %q", ev.Reason)
	}
	at(t, "live deletion", ev, restarted.Add(timeout))
}

// TestDeadlinePassedWhileDown: a deadline that passed while the coordinator
// was stopped is honoured at start (late, never early).
func TestDeadlinePassedWhileDown(t *testing.T) {
	const timeout = time.Minute
	e := newEnv(t, Config{EphemeralTimeout: timeout})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "gone")
	e.stop()
	e.advance(timeout + time.Second)
	restarted := e.now()
	e.start()
	if _, ok := e.nodeByName("gone"); ok {
		t.Fatal("a node whose deadline passed while the coordinator was down is still listed")
	}
	ev := deletedEvent(e, n.id())
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("event %+v (deadline %s)", ev, n.reg.Node.GCDeadline)
	}
	at(t, "deletion", ev, restarted)
	// The events from before the restart are still there, in order.
	evs := e.events()
	if len(evs) != 2 || evs[0].Type != meshapi.EventRegistered || evs[0].Seq != 1 || evs[1].Seq != 2 {
		t.Fatalf("events after restart: %+v", evs)
	}
}

// TestRestartTakesLastSeenFromHeartbeat: a node online when the coordinator
// went down was last seen at the coordinator's last heartbeat (it was still
// connected then), not when its stream opened.
func TestRestartTakesLastSeenFromHeartbeat(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: time.Minute})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	n := e.register(k.Key, "live")
	n.connect("").next(wait)
	before, _ := e.nodeByName("live")
	// Two heartbeats later the coordinator dies. (A crash: nothing is
	// written at the end; the heartbeat is what the file says.)
	e.advance(2*heartbeatInterval + time.Second)
	beat := before.LastSeen.Add(2 * heartbeatInterval)
	eventually(t, wait, "the heartbeat is stored", func() bool {
		e.s.w.Barrier().Wait(context.Background(), wait)
		return storedMeta(t, e, metaHeartbeat) == strconv.FormatInt(beat.UnixNano(), 10)
	})
	e.stop()
	e.advance(time.Minute)

	e.start()
	after, ok := e.nodeByName("live")
	if !ok || !after.Online || !after.LastSeen.Equal(beat) {
		t.Fatalf("after restart: %+v; want online, last seen at the heartbeat %s (connected at %s)", after, beat, before.LastSeen)
	}
}

// storedMeta reads a meta value from the running coordinator's store.
func storedMeta(t *testing.T, e *env, name string) string {
	t.Helper()
	snap, err := e.s.st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Meta[name]
}

// TestEventRetention: stored events older than the retention are deleted
// at the next prune (every tenth of the retention), the newest is always
// kept, and numbering continues after a restart even when every event was
// pruned.
func TestEventRetention(t *testing.T) {
	const retention = time.Hour
	e := newEnv(t, Config{EventRetention: retention})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	e.register(k.Key, "old") // event 1, at t0
	e.advance(30 * time.Minute)
	e.register(k.Key, "new") // event 2, at t0+30m
	// Prunes run at t0, t0+6m, …: the one at t0+66m deletes event 1 only.
	e.advance(36 * time.Minute)
	if evs := e.events(); len(evs) != 1 || evs[0].Seq != 2 {
		t.Fatalf("after the retention of event 1: %+v", evs)
	}
	// Later (the prune at t0+96m): event 2 is past the retention too, but
	// it is the newest.
	e.advance(30 * time.Minute)
	e.restart()
	c := e.register(k.Key, "later")
	evs := e.events()
	if len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 || evs[1].NodeID != c.id() {
		t.Fatalf("after a restart with everything past the retention: %+v", evs)
	}
}
