package coordinator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// TestKill9KeepsDeadlines crashes the coordinator (SIGKILL) while one
// ephemeral node is offline with a deadline and another is online, and
// starts it again on the same SQLite file: the offline node is collected at
// its original deadline (the clock was not reset), the online one at
// restart + timeout (not early, and not late), and nothing else is lost.
func TestKill9KeepsDeadlines(t *testing.T) {
	harness.Integration(t)
	const timeout = 4 * time.Second
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: timeout, ReconnectGrace: time.Second})
	eph := c.CreateKey(t, "--ephemeral", "--reusable")
	plain := c.CreateKey(t, "--reusable")

	idle := register(t, c.URL, eph, "idle") // never connects
	live := register(t, c.URL, eph, "live")
	live.connect()
	keeper := register(t, c.URL, plain, "keeper")
	c.WaitEvent(t, 10*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventOnline && e.Name == "live" })

	c.Kill(t)
	live.drop()
	restarting := time.Now() // the new process's clock for live starts after this...
	c.Restart(t)
	restarted := time.Now() // ...and before this

	// Everything registered before the crash is there, secrets included.
	names := map[string]meshapi.Node{}
	for _, n := range c.Nodes(t) {
		names[n.Name] = n
	}
	for _, want := range []string{"idle", "live", "keeper"} {
		if _, ok := names[want]; !ok {
			t.Fatalf("%s lost in the crash; nodes: %v", want, names)
		}
	}
	if got := names["idle"].GCDeadline; !got.Equal(idle.resp.Node.GCDeadline) {
		t.Fatalf("idle's deadline changed across the crash: %s -> %s", idle.resp.Node.GCDeadline, got)
	}
	keeper.connect()
	keeper.drop()

	ev := c.WaitEvent(t, 15*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventDeleted && e.Name == "idle" })
	deadline := idle.resp.Node.Created.Add(timeout)
	if ev.Reason != meshapi.ReasonGC || ev.Time.Before(deadline) || ev.Time.Sub(deadline) > time.Second {
		t.Fatalf("idle deleted at %s (%s), deadline %s: must be within 1s after it", ev.Time, ev.Reason, deadline)
	}
	ev = c.WaitEvent(t, 15*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventDeleted && e.Name == "live" })
	if ev.Time.Before(restarting.Add(timeout)) {
		t.Fatalf("live (online at the crash) deleted %v after the restart began, before the timeout %v: counted from before the restart",
			ev.Time.Sub(restarting), timeout)
	}
	allowed := time.Second
	if pgtest.CoordOnPostgres() {
		// A replica on PostgreSQL marks the nodes of a dead replica (the
		// killed process) offline once that one's death is established:
		// its heartbeat older than the replica timeout, judged only after
		// the new replica's own heartbeats ran that long (docs/replicas.md).
		// The clock still starts at the restart: late, never early.
		allowed += 2 * replicaTimeout
	}
	if late := ev.Time.Sub(restarted.Add(timeout)); late > allowed {
		t.Fatalf("live deleted %v after restart + timeout, allowed %v", late, allowed)
	}
	if ev.Reason != meshapi.ReasonGC {
		t.Fatalf("live deleted with reason %s", ev.Reason)
	}
	// Event numbering continued across the crash, without gaps.
	evs := c.Events(t)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: %+v", i, e.Seq, evs)
		}
	}
	if _, ok := c.Node(t, "keeper"); !ok {
		t.Fatal("the non-ephemeral node was collected")
	}
}

// TestKill9AfterAnswersLosesNothing: every registration and key the server
// answered is stored, even when it is killed right after answering.
func TestKill9AfterAnswersLosesNothing(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--reusable")
	var nodes []*testNode
	for i := range 30 {
		nodes = append(nodes, register(t, c.URL, key, "n"+string(rune('a'+i%26))))
	}
	lastKey := c.CreateKey(t)
	c.Kill(t)
	c.Restart(t)
	if got := len(c.Nodes(t)); got != len(nodes) {
		t.Fatalf("%d of %d answered registrations survived kill -9", got, len(nodes))
	}
	register(t, c.URL, lastKey, "last") // the key created just before the kill works
	for _, n := range nodes[:3] {
		n.connect()
		n.drop()
	}
}

// TestDeadlinePassedWhileDown: a deadline that passes while the process is
// dead is honoured at the next start: deleted at once (late, never early).
func TestDeadlinePassedWhileDown(t *testing.T) {
	harness.Integration(t)
	const timeout = 2 * time.Second
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: timeout})
	n := register(t, c.URL, c.CreateKey(t, "--ephemeral"), "gone")
	c.Kill(t)
	harness.Eventually(t, 10*time.Second, "deadline passes while down", func() (bool, string) {
		return time.Now().After(n.resp.Node.GCDeadline), "waiting"
	})
	c.Restart(t)
	if _, ok := c.Node(t, "gone"); ok {
		t.Fatal("node whose deadline passed while the coordinator was down is still listed")
	}
	ev := c.WaitEvent(t, 5*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventDeleted && e.Name == "gone" })
	if ev.Reason != meshapi.ReasonGC || ev.Time.Before(n.resp.Node.GCDeadline) {
		t.Fatalf("event %+v", ev)
	}
}

// replicaTimeout is how long a replica's heartbeat must be silent before
// the others declare it dead (PostgreSQL, docs/replicas.md).
const replicaTimeout = 6 * time.Second

// TestSecondServerOnSameDB: two coordinators never share a SQLite file;
// on PostgreSQL, a second one is a replica and serves beside the first.
func TestSecondServerOnSameDB(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	if pgtest.CoordOnPostgres() {
		second := coordtest.Start(t, coordtest.Options{DB: c.DB})
		key := c.CreateKey(t)
		register(t, second.URL, key, "on-the-second")
		harness.Eventually(t, 10*time.Second, "the first replica knows a node registered on the second", func() (bool, string) {
			_, ok := c.Node(t, "on-the-second")
			return ok, "not listed"
		})
	} else {
		second := &coordtestProbe{bin: c.Binary}
		out, code := second.run(t, "serve", "--listen", "127.0.0.1:0", "--db", c.DB, "--admin-socket", t.TempDir()+"/x.sock")
		if code != 1 || !strings.Contains(out, "in use by another meshcoord") {
			t.Fatalf("second server on the same DB: exit %d, output %q", code, out)
		}
	}
	resp, err := http.Get(c.URL + meshapi.PathHealth)
	if err != nil {
		t.Fatalf("first server hurt: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first server hurt: /healthz %s", resp.Status)
	}
}
