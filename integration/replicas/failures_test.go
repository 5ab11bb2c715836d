package replicas_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// A write transaction of replica a fails after its commands ran (a
// trigger the test installs refuses the row of one node, "doomed"), while
// the three replicas take registrations at once. The doomed registration
// gets a retryable 503 and leaves nothing: no node, no event, no name,
// address or number taken; a registration that shared its transaction (if
// one did) gets a 503 too and succeeds when sent again; a reloads its
// memory from the database (its log says so) and no map stream ever
// showed the doomed node. Every replica then serves the database's state (nodes list
// --json, events numbered without a gap or a repeat, the map streams), the
// names are the lowest free ones (the hole a logout left is filled first)
// and the addresses unique. Once the trigger is gone, the doomed node's
// retry, with the same request, gets the next free name.
func TestFailedWriteReloadsAndLosesNothing(t *testing.T) {
	harness.Integration(t)
	cs, db := startReplicas(t, pgtest.Shared(t), 3, coordtest.Options{})
	a := cs[0]
	key := a.CreateKey(t, "--ephemeral", "--reusable")

	// A watcher streams on each replica.
	var watchers []*stream
	var watcherIDs []meshapi.NodeID
	for i, r := range cs {
		n, secret := register(t, r.URL, key, "watch", 100+i)
		watcherIDs = append(watcherIDs, n.ID)
		watchers = append(watchers, openStream(t, r.URL, secret, 0, ""))
	}
	// web, web-1, web-2; web-1 logs out: its name and address are the
	// lowest free ones.
	var hole meshapi.Node
	var holeSecret string
	for i := range 3 {
		if n, secret := register(t, cs[i].URL, key, "web", i); n.Name == "web-1" {
			hole, holeSecret = n, secret
		}
	}
	if hole.Name != "web-1" {
		t.Fatal("no web-1 registered")
	}
	if status, body := call(t, http.MethodPost, cs[2].URL, meshapi.PathLogout, holeSecret, nil); status != http.StatusOK {
		t.Fatalf("logout of web-1: %d %s", status, body)
	}

	// The trigger refuses the doomed node's row: a's transaction fails
	// after the commands ran on its memory.
	const doomed = 666
	pk := pubKey(doomed)
	execSQL(t, db, `CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.public_key = '\x`+hex.EncodeToString(pk[:])+`'::bytea THEN
				RAISE EXCEPTION 'test: node % refused', NEW.hostname;
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER refuse_doomed BEFORE INSERT ON nodes FOR EACH ROW EXECUTE FUNCTION refuse_doomed()`)

	// The doomed registration on a, and six more on the three replicas
	// (two on a: they may share its transaction), all at once.
	doomedSecret := newSecret(t)
	var doomedStatus int
	var doomedBody []byte
	others := make([]meshapi.Node, 6)
	var retried int
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1 + len(others))
	go func() {
		defer wg.Done()
		doomedStatus, doomedBody = tryRegister(t, a.URL, key, "web", doomed, doomedSecret)
	}()
	for i := range others {
		go func() {
			defer wg.Done()
			n, _, r := registerRetrying(t, cs[i%3].URL, key, "web", 10+i)
			mu.Lock()
			others[i], retried = n, retried+r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if doomedStatus != http.StatusServiceUnavailable {
		t.Fatalf("the doomed registration: %d %s, want a retryable 503", doomedStatus, doomedBody)
	}
	// The node hears that it may retry, not what the database said (the
	// trigger's message, SQLSTATE): that stays in the coordinator's log.
	if bytes.Contains(doomedBody, []byte("SQLSTATE")) || bytes.Contains(doomedBody, []byte("test: node")) {
		t.Fatalf("the 503 sent to the node carries the database's error: %s", doomedBody)
	}
	t.Logf("doomed: %d %s; other registrations retried %d times", doomedStatus, doomedBody, retried)
	logs := a.Logs()
	if !strings.Contains(logs, "writing a change failed") || !strings.Contains(logs, "state reloaded from the database") {
		t.Fatalf("replica a did not log a failed write and a reload:\n%s", logs)
	}

	// Nothing of the doomed node anywhere, and every replica serves the
	// database's state.
	consistent := func(stage string) *dbState {
		t.Helper()
		for i, r := range cs {
			harness.Eventually(t, 30*time.Second, stage+": "+r.URL+" serves the database's state", func() (bool, string) {
				return servesDB(t, r, db)
			})
			harness.Eventually(t, 30*time.Second, stage+": the map stream on "+r.URL+" is the database's", func() (bool, string) {
				return mapIsDB(watchers[i], watcherIDs[i], db)
			})
		}
		st, err := readDB(db)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := consistent("after the failed write")
	for id, n := range st.nodes {
		if n.PublicKey == pk {
			t.Fatalf("the failed registration left node %d: %+v", id, n)
		}
	}
	for i, w := range watchers {
		for _, l := range w.got() {
			for _, p := range l.Peers {
				if p.PublicKey == pk {
					t.Fatalf("the stream on replica %d showed the doomed node (%s at version %d)", i, p.Name, l.Version)
				}
			}
		}
	}
	// The names are the lowest free ones, the hole first; the addresses
	// are unique, and each node was registered once.
	webNames(t, st, 8) // web, web-1 … web-7: 2 kept, 6 new, the hole refilled
	holeFilled := false
	for _, n := range others {
		holeFilled = holeFilled || (n.Name == "web-1" && n.IPv4 == hole.IPv4)
	}
	if !holeFilled {
		t.Errorf("nobody got web-1 and its address %s back: %+v", hole.IPv4, others)
	}
	registeredOnce(t, st)

	// The trigger goes; the doomed node sends its request again (same
	// secret) and gets the next free name.
	execSQL(t, db, `DROP TRIGGER refuse_doomed ON nodes`)
	status, body := tryRegister(t, a.URL, key, "web", doomed, doomedSecret)
	if status != http.StatusOK {
		t.Fatalf("the doomed node's retry: %d %s", status, body)
	}
	if n := decodeRegistered(t, body); n.Name != "web-8" {
		t.Errorf("the doomed node's retry got %s, want web-8", n.Name)
	}
	st = consistent("after the retry")
	webNames(t, st, 9)
	registeredOnce(t, st)
}

// webNames fails t unless the database's nodes named web* are web, web-1 …
// web-(n-1), with unique addresses among all nodes.
func webNames(t *testing.T, st *dbState, n int) {
	t.Helper()
	names, v4, v6 := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for id, d := range st.nodes {
		if v4[d.IPv4] || (d.IPv6 != "" && v6[d.IPv6]) {
			t.Errorf("node %d's address %s or %s given twice", id, d.IPv4, d.IPv6)
		}
		v4[d.IPv4], v6[d.IPv6] = true, true
		if strings.HasPrefix(d.Name, "web") {
			names[d.Name] = true
		}
	}
	for i := range n {
		want := "web"
		if i > 0 {
			want = fmt.Sprint("web-", i)
		}
		if !names[want] {
			t.Errorf("no %s: the web names are %v, want web … web-%d", want, names, n-1)
		}
	}
	if len(names) != n {
		t.Errorf("the web names are %v, want web … web-%d", names, n-1)
	}
}

// registeredOnce fails t unless each node of the database has exactly one
// registered event and the events are numbered 1, 2, 3 … without a gap.
func registeredOnce(t *testing.T, st *dbState) {
	t.Helper()
	regs := map[meshapi.NodeID]int{}
	for i, e := range st.events {
		if e.Seq != uint64(i+1) {
			t.Errorf("event #%d has number %d: a gap or a repeat", i+1, e.Seq)
		}
		if e.Type == meshapi.EventRegistered {
			regs[e.NodeID]++
		}
	}
	for id, n := range st.nodes {
		if regs[id] != 1 {
			t.Errorf("node %d (%s) registered %d times in the events, want once", id, n.Name, regs[id])
		}
	}
}
