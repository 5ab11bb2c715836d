package replicas_test

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// Replica x runs on, cut off from PostgreSQL (a forwarder the test owns
// stops passing its packets) for longer than the replica timeout. The
// other replicas declare it dead exactly once (one takeover change); x,
// whose heartbeats fail, ends its streams and refuses changes, so the
// nodes that streamed on x move to the others and are online there, homed
// on a live replica, before their GC deadline (none is collected); while
// cut off, x acts on no deadline (a node whose deadline passes meanwhile
// is collected once, by the others, and x still lists it). When the link
// is back, x rejoins the replicas table under its own id, serves the
// database's state, leaves the moved nodes homed where they are, and
// serves a new node; killed later, it is declared dead again.
func TestReplicaCutFromTheDatabaseRejoins(t *testing.T) {
	harness.Integration(t)
	pg := pgtest.Shared(t)
	o := coordtest.Options{ReconnectGrace: time.Second}
	o.DB = pg.NewDatabase(t)
	a, b := coordtest.Start(t, o), coordtest.Start(t, o)
	link, linked := newDBLink(t, o.DB)
	xo := o
	xo.DB = linked
	x := coordtest.Start(t, xo)
	db, live := o.DB, []*coordtest.Coordinator{a, b}
	xid := replicaID(t, db, x)
	movers := a.CreateKey(t, "--ephemeral", "--reusable", "--ephemeral-timeout", "30s")
	collected := a.CreateKey(t, "--ephemeral", "--ephemeral-timeout", "5s")

	// Nodes given x first stream on x; one more streams on a.
	list := []string{x.URL, a.URL, b.URL}
	var onX []*node
	for i := range 4 {
		onX = append(onX, join(t, list, movers, "mover", 3*i))
	}
	other := join(t, list, movers, "other", 1)
	if t.Failed() {
		t.FailNow()
	}
	homes := func() (map[meshapi.NodeID]dbNode, error) {
		st, err := readDB(db)
		if err != nil {
			return nil, err
		}
		return st.nodes, nil
	}
	harness.Eventually(t, 30*time.Second, "the movers online on x", func() (bool, string) {
		ns, err := homes()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range onX {
			if d := ns[n.id]; !d.Online || d.Home != xid {
				return false, fmt.Sprintf("%s: %+v", n.name, d)
			}
		}
		return ns[other.id].Online, fmt.Sprintf("other: %+v", ns[other.id])
	})

	// A node whose deadline comes while x is cut off: registered, never
	// streaming, collected 5s later.
	gcNode, _ := register(t, a.URL, collected, "collected", 99)
	harness.Eventually(t, 30*time.Second, "x knows the node to collect", func() (bool, string) {
		_, ok := x.Node(t, gcNode.Name)
		return ok, "not listed"
	})

	cutAt := time.Now()
	link.Cut()
	if time.Until(gcNode.GCDeadline) < time.Second {
		t.Fatalf("x was cut off at %v, too close to the deadline %v of the node to collect: the box is too slow for this test",
			cutAt, gcNode.GCDeadline)
	}
	removals := func() int {
		var n int
		if err := sql(t, db, `SELECT count(*) FROM changes, jsonb_array_elements(ops) o
			WHERE o->>'op' = 'remove_replica' AND o->>'name' = '`+xid+`'`, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	harness.Eventually(t, 20*time.Second, "x declared dead", func() (bool, string) {
		n := removals()
		return n > 0, fmt.Sprintf("%d takeovers", n)
	})
	deadAfter := time.Since(cutAt)
	if deadAfter < replicaTimeout {
		t.Fatalf("x declared dead %v after the cut, before the replica timeout", deadAfter)
	}
	var moved map[meshapi.NodeID]dbNode
	harness.Eventually(t, 15*time.Second, "the movers online on a live replica", func() (bool, string) {
		ns, err := homes()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range append(onX, other) {
			if d, ok := ns[n.id]; !ok || !d.Online || d.Home == xid || d.Home == "" {
				return false, fmt.Sprintf("%s (%d): listed %v, %+v", n.name, n.id, ok, d)
			}
		}
		moved = ns
		return true, ""
	})
	harness.Eventually(t, 15*time.Second, "the node to collect collected by the live replicas", func() (bool, string) {
		_, ok := moved[gcNode.ID]
		if ok {
			moved, _ = homes()
			_, ok = moved[gcNode.ID]
		}
		return !ok, "still in the database"
	})
	movedAfter := time.Since(cutAt)
	// x, cut off, acted on no deadline: it still lists the node.
	if _, ok := x.Node(t, gcNode.Name); !ok {
		t.Fatalf("x, cut from the database, dropped %s from its memory", gcNode.Name)
	}
	if n := removals(); n != 1 {
		t.Fatalf("x taken over %d times, want once", n)
	}

	restoredAt := time.Now()
	link.Restore()
	harness.Eventually(t, 20*time.Second, "x rejoined under its id", func() (bool, string) {
		var n int
		if err := sql(t, db, `SELECT count(*) FROM replicas WHERE id = '`+xid+`'`, &n); err != nil {
			return false, err.Error()
		}
		return n == 1, "no row"
	})
	rejoinedAfter := time.Since(restoredAt)
	for _, r := range append(live, x) {
		harness.Eventually(t, 20*time.Second, r.URL+" serves the database's state", func() (bool, string) {
			return servesDB(t, r, db)
		})
	}
	now, err := homes()
	if err != nil {
		t.Fatal(err)
	}
	for id, d := range moved {
		if now[id].Home != d.Home || !now[id].Online {
			t.Errorf("node %d (%s) was homed on %s, now %+v", id, d.Name, d.Home, now[id])
		}
	}
	st, err := readDB(db)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[meshapi.NodeID]int{}
	for _, e := range st.events {
		if e.Type == meshapi.EventDeleted {
			deleted[e.NodeID]++
		}
	}
	for _, e := range a.Events(t) {
		if e.Type == meshapi.EventDeleted && e.Reason != meshapi.ReasonGC {
			t.Errorf("%s (%d) deleted with reason %s, want gc", e.Name, e.NodeID, e.Reason)
		}
	}
	if len(deleted) != 1 || deleted[gcNode.ID] != 1 {
		t.Errorf("deletions %v: want the collected node's, once", deleted)
	}
	if n := removals(); n != 1 {
		t.Fatalf("x taken over %d times, want once", n)
	}

	// x serves again: a node registers and streams on x, homed there, and
	// its map is the database's.
	fresh, secret := register(t, x.URL, movers, "fresh", 7)
	fs := openStream(t, x.URL, secret, 0, "")
	harness.Eventually(t, 20*time.Second, "the new node homed on x", func() (bool, string) {
		ns, err := homes()
		if err != nil {
			return false, err.Error()
		}
		d := ns[fresh.ID]
		return d.Online && d.Home == xid, fmt.Sprintf("%+v", d)
	})
	harness.Eventually(t, 20*time.Second, "the new node's map on x is the database's", func() (bool, string) {
		return mapIsDB(fs, fresh.ID, db)
	})

	// A replica that rejoined is a replica like the others: killed, it is
	// declared dead again, and its node goes offline.
	killedAt := time.Now()
	x.Kill(t)
	harness.Eventually(t, 20*time.Second, "x, killed, declared dead again", func() (bool, string) {
		ns, err := homes()
		if err != nil {
			return false, err.Error()
		}
		n := removals()
		return n == 2 && !ns[fresh.ID].Online, fmt.Sprintf("%d takeovers, the new node %+v", n, ns[fresh.ID])
	})
	t.Logf("cut: declared dead after %v, the movers online elsewhere after %v; restored: rejoined after %v; killed: declared dead after %v",
		deadAfter.Round(time.Millisecond), movedAfter.Round(time.Millisecond), rejoinedAfter.Round(time.Millisecond),
		time.Since(killedAt).Round(time.Millisecond))
}

// replicaID returns the id of replica c, as the replicas table has it.
func replicaID(t *testing.T, db string, c *coordtest.Coordinator) string {
	t.Helper()
	var id string
	var err error
	harness.Eventually(t, 10*time.Second, "the replica's row", func() (bool, string) {
		err = sql(t, db, `SELECT id FROM replicas WHERE url = '`+c.URL+`'`, &id)
		return err == nil, fmt.Sprint(err)
	})
	return id
}

// dbLink is a TCP forwarder the test owns between one replica and
// PostgreSQL, to cut that replica off while its process runs. Cut, it
// forwards nothing: the replica's connections stall as on a network that
// drops every packet, and new ones are accepted but never answered.
// Restored, it closes the stalled connections (as the reset a partition
// ends with once it outlasted TCP) and forwards new ones again.
type dbLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[*linkConn]bool
	wg     sync.WaitGroup
}

// linkConn is one forwarded connection; stalled once a cut caught it.
type linkConn struct {
	client, server net.Conn // server is nil when accepted during a cut
	stalled        bool     // under dbLink.mu
	once           sync.Once
}

func (c *linkConn) close() {
	c.once.Do(func() {
		c.client.Close()
		if c.server != nil {
			c.server.Close()
		}
	})
}

// newDBLink starts a link to the database of db and returns it with db's
// URL through it.
func newDBLink(t *testing.T, db string) (*dbLink, string) {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &dbLink{ln: ln, target: u.Host, conns: map[*linkConn]bool{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	u.Host = ln.Addr().String()
	return l, u.String()
}

func (l *dbLink) accept() {
	defer l.wg.Done()
	for {
		client, err := l.ln.Accept()
		if err != nil {
			return
		}
		c := &linkConn{client: client}
		l.mu.Lock()
		if !l.cut {
			if c.server, err = net.Dial("tcp", l.target); err != nil {
				l.mu.Unlock()
				client.Close()
				continue
			}
		}
		c.stalled = l.cut
		l.conns[c] = true
		l.mu.Unlock()
		l.wg.Add(1)
		go l.pipe(c, c.server, c.client)
		if c.server != nil {
			l.wg.Add(1)
			go l.pipe(c, c.client, c.server)
		}
	}
}

// pipe copies src to dst while c is not stalled; a stalled connection's
// bytes are read and dropped.
func (l *dbLink) pipe(c *linkConn, dst, src net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		l.mu.Lock()
		stalled := c.stalled
		l.mu.Unlock()
		if n > 0 && !stalled {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Cut stops forwarding, on the open connections and on new ones.
func (l *dbLink) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		c.stalled = true
	}
}

// Restore closes the stalled connections and forwards new ones again.
func (l *dbLink) Restore() {
	l.mu.Lock()
	l.cut = false
	var stalled []*linkConn
	for c := range l.conns {
		if c.stalled {
			stalled = append(stalled, c)
		}
	}
	l.mu.Unlock()
	for _, c := range stalled {
		c.close()
	}
}

func (l *dbLink) close() {
	l.ln.Close()
	l.mu.Lock()
	var all []*linkConn
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	for _, c := range all {
		c.close()
	}
	l.wg.Wait()
}
