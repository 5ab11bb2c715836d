package coordinator

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"

	"github.com/meshinit/meshinit/meshapi"
)

// within checks that got happened in [from+d, from+d+slack]: never before
// the deadline, and at most slack after it.
func within(t *testing.T, what string, got, from time.Time, d, slack time.Duration) {
	t.Helper()
	deadline := from.Add(d)
	if got.Before(deadline) {
		t.Fatalf("%s at %s: %v BEFORE its deadline %s", what, got.Format(time.StampMicro), deadline.Sub(got), deadline.Format(time.StampMicro))
	}
	if late := got.Sub(deadline); late > slack {
		t.Fatalf("%s %v after its deadline, allowed %v", what, late, slack)
	}
}

func deletedEvent(e *env, id meshapi.NodeID, timeout time.Duration) meshapi.Event {
	e.t.Helper()
	return e.waitEvent(timeout, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == id })
}

func TestGCNeverConnectedCountsFromRegistration(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	e := newEnv(t, Config{EphemeralTimeout: timeout})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "lost")
	if n.reg.Node.GCDeadline != n.reg.Node.Created.Add(timeout) {
		t.Fatalf("deadline %s, want created+%v", n.reg.Node.GCDeadline, timeout)
	}
	ev := deletedEvent(e, n.id(), 10*time.Second)
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("reason %q", ev.Reason)
	}
	within(t, "deletion", ev.Time, n.reg.Node.Created, timeout, time.Second)
}

func TestGCAfterDropWithKeyTimeout(t *testing.T) {
	const grace, keyTimeout = 200 * time.Millisecond, 1500 * time.Millisecond
	// The server default is long: the key's own timeout must win.
	e := newEnv(t, Config{EphemeralTimeout: time.Hour, ReconnectGrace: grace})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, EphemeralTimeout: meshapi.Duration(keyTimeout)})
	n := e.register(k.Key, "job")
	s := n.connect("")
	s.next(wait)
	if v, _ := e.nodeByName("job"); !v.Online || !v.GCDeadline.IsZero() {
		t.Fatalf("online node: %+v (an online node has no deadline)", v)
	}
	s.close()
	off := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOffline && ev.NodeID == n.id() })
	v, _ := e.nodeByName("job")
	dropped := v.LastSeen
	within(t, "offline", off.Time, dropped, grace, time.Second)
	if v.GCDeadline != dropped.Add(keyTimeout) {
		t.Fatalf("deadline %s, want last_seen %s + %v", v.GCDeadline, dropped, keyTimeout)
	}
	ev := deletedEvent(e, n.id(), 10*time.Second)
	within(t, "deletion", ev.Time, dropped, keyTimeout, time.Second)
}

func TestReconnectClearsDeadline(t *testing.T) {
	const grace, timeout = 100 * time.Millisecond, 800 * time.Millisecond
	e := newEnv(t, Config{EphemeralTimeout: timeout, ReconnectGrace: grace})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "flappy")
	n.connect("").next(wait)
	n.strm.close()
	e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOffline && ev.NodeID == n.id() })
	first, _ := e.nodeByName("flappy")
	// Back online before the deadline: no deadline while online...
	n.connect("").next(wait)
	if v, _ := e.nodeByName("flappy"); !v.Online || !v.GCDeadline.IsZero() {
		t.Fatalf("after reconnect: %+v", v)
	}
	// ...and held past the old deadline, it is still there.
	eventually(t, 10*time.Second, "old deadline passes", func() bool { return time.Now().After(first.GCDeadline.Add(200 * time.Millisecond)) })
	if _, ok := e.nodeByName("flappy"); !ok {
		t.Fatal("an online node was collected at its old deadline")
	}
	// A new drop sets a new deadline from the new drop.
	n.strm.close()
	e.waitEvent(wait, func(ev meshapi.Event) bool {
		return ev.Type == meshapi.EventOffline && ev.NodeID == n.id() && ev.Time.After(first.GCDeadline)
	})
	second, _ := e.nodeByName("flappy") // last_seen is the new drop
	if !second.LastSeen.After(first.LastSeen) || second.GCDeadline != second.LastSeen.Add(timeout) {
		t.Fatalf("second drop: last_seen %s deadline %s (first drop %s)", second.LastSeen, second.GCDeadline, first.LastSeen)
	}
	ev := deletedEvent(e, n.id(), 10*time.Second)
	within(t, "deletion", ev.Time, second.LastSeen, timeout, time.Second)
}

// TestRestartKeepsDeadlines restarts the coordinator (same SQLite file)
// while one node is offline with a deadline and another is online:
// the first keeps its deadline; the second is counted from the restart.
func TestRestartKeepsDeadlines(t *testing.T) {
	const timeout = 2 * time.Second
	e := newEnv(t, Config{EphemeralTimeout: timeout, ReconnectGrace: 200 * time.Millisecond})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	idle := e.register(k.Key, "idle") // never connects: deadline = created + timeout
	live := e.register(k.Key, "live")
	live.connect("").next(wait)
	e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOnline && ev.NodeID == live.id() })

	restarted := time.Now() // the server's clock for live starts after this
	e.restart()
	if v, ok := e.nodeByName("idle"); !ok || v.GCDeadline != idle.reg.Node.GCDeadline {
		t.Fatalf("idle after restart: %+v (deadline must be the stored one, %s)", v, idle.reg.Node.GCDeadline)
	}
	// live was online when the coordinator went down: online for a grace,
	// then offline, and collected no earlier than restart + timeout.
	ev := deletedEvent(e, idle.id(), 10*time.Second)
	within(t, "idle deletion", ev.Time, idle.reg.Node.Created, timeout, time.Second)
	ev = deletedEvent(e, live.id(), 10*time.Second)
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("live deleted with reason %q", ev.Reason)
	}
	if ev.Time.Before(restarted.Add(timeout)) {
		t.Fatalf("live was deleted %v after the restart, before the timeout %v: counted from before the restart", ev.Time.Sub(restarted), timeout)
	}
	if late := ev.Time.Sub(restarted.Add(timeout)); late > time.Second+200*time.Millisecond {
		t.Fatalf("live deleted %v late", late)
	}
}

// TestDeadlinePassedWhileDown: a deadline that passed while the coordinator
// was stopped is honoured at start (late, never early).
func TestDeadlinePassedWhileDown(t *testing.T) {
	const timeout = 1 * time.Second
	e := newEnv(t, Config{EphemeralTimeout: timeout})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "gone")
	e.stop()
	eventually(t, 10*time.Second, "deadline passes while stopped", func() bool { return time.Now().After(n.reg.Node.GCDeadline) })
	e.start()
	if _, ok := e.nodeByName("gone"); ok {
		t.Fatal("a node whose deadline passed while the coordinator was down is still listed")
	}
	ev := deletedEvent(e, n.id(), wait)
	if ev.Reason != meshapi.ReasonGC || ev.Time.Before(n.reg.Node.GCDeadline) {
		t.Fatalf("event %+v (deadline %s)", ev, n.reg.Node.GCDeadline)
	}
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
	e.stop()

	// The heartbeat the coordinator stored while the node was connected.
	beat := before.LastSeen.Add(3 * time.Second)
	st, err := store.OpenSQLite(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Apply(context.Background(), []store.Op{store.SetMeta(metaHeartbeat, strconv.FormatInt(beat.UnixNano(), 10))})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	e.start()
	after, ok := e.nodeByName("live")
	if !ok || !after.Online || !after.LastSeen.Equal(beat) {
		t.Fatalf("after restart: %+v; want online, last seen at the heartbeat %s (connected at %s)", after, beat, before.LastSeen)
	}
}
