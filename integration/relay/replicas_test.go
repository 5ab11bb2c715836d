package relay_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/netns"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/internal/testnet"
)

// relayMetric reads one relay series from a coordinator in pub's
// /metrics (0 when absent).
func relayMetric(t *testing.T, tp *topology, c *coordtest.Coordinator, series string) float64 {
	t.Helper()
	resp, err := netns.HTTPClient(tp.pub, 10*time.Second).Get(c.URL + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", c.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// 6. Two meshcoord replicas on one PostgreSQL database, UDP between the
// sites dropped, a on replica 1 and b on replica 2: a 16 MiB transfer goes
// a → replica 1's relay → replica 2's relay → b, and the acks back. Then
// replica 1 is killed: a's coordinator list fails over to replica 2, its
// relay connection follows, and traffic flows on with no link in between.
func TestRelayBetweenReplicas(t *testing.T) {
	harness.Integration(t)
	tp := newTopology(t)
	tp.dropUDPBetweenSites()
	pg := pgtest.Shared(t)
	tcpDB := pg.NewDatabase(t)
	db := pg.OverSocket(t, tcpDB)
	r1 := coordtest.Start(t, coordtest.Options{Netns: tp.pub, Listen: coordIP + ":8480", DB: db})
	r2 := coordtest.Start(t, coordtest.Options{Netns: tp.pub, Listen: coordIP + ":8481", DB: db})
	const sent, received = `meshcoord_relay_forwarded_packets_total{direction="sent"}`, `meshcoord_relay_forwarded_packets_total{direction="received"}`
	harness.Eventually(t, 30*time.Second, "the replicas' relays linked both ways", func() (bool, string) {
		d1, d2 := relayMetric(t, tp, r1, `meshcoord_relay_links{side="dialed"}`), relayMetric(t, tp, r2, `meshcoord_relay_links{side="dialed"}`)
		return d1 == 1 && d2 == 1, "dialed links: " + strconv.FormatFloat(d1, 'f', 0, 64) + ", " + strconv.FormatFloat(d2, 'f', 0, 64)
	})
	key := r1.CreateKey(t, "--ephemeral", "--reusable")
	m := &mesh{tp: tp, coord: r1, key: key}
	m.a = startNode(t, tp.siteA, r1.URL+","+r2.URL, key, "a")
	m.b = startNode(t, tp.siteB, r2.URL+","+r1.URL, key, "b")
	if st := m.a.waitUp(1); st.Coordinator.URL != r1.URL {
		t.Fatalf("a uses %s, want replica 1", st.Coordinator.URL)
	}
	st := m.b.waitUp(1)
	if st.Coordinator.URL != r2.URL {
		t.Fatalf("b uses %s, want replica 2", st.Coordinator.URL)
	}
	m.bIP = st.IPv4.String()
	sink := m.serve(t, testnet.SHA256Sink)
	m.transfer(t, sink, 16<<20, nil)
	for _, n := range []*node{m.a, m.b} {
		if p := n.path(); p.Path != "relay" {
			t.Errorf("%s: path %q (%s), want relay", n.name, p.Path, p.PathReason)
		}
	}
	// 16 MiB is over 11 000 packets of at most 1.4 KB.
	s, r := relayMetric(t, tp, r1, sent), relayMetric(t, tp, r2, received)
	t.Logf("a → b: replica 1 forwarded %v packets, replica 2 received %v", s, r)
	if s < 11000 || r < 11000 {
		t.Errorf("replica 1 forwarded %v packets, replica 2 received %v: want the transfer's", s, r)
	}
	if s, r := relayMetric(t, tp, r2, sent), relayMetric(t, tp, r1, received); s == 0 || r == 0 {
		t.Errorf("b's packets back: replica 2 forwarded %v, replica 1 received %v", s, r)
	}

	r1.Kill(t)
	t.Log("replica 1 killed")
	harness.Eventually(t, 60*time.Second, "a on replica 2, its relay too", func() (bool, string) {
		st, err := m.a.status()
		if err != nil {
			return false, err.Error()
		}
		return st.Coordinator.URL == r2.URL && st.Relay != nil && st.Relay.State == "connected" &&
			relayMetric(t, tp, r2, "meshcoord_relay_clients") == 2, "coordinator " + st.Coordinator.URL
	})
	before := relayMetric(t, tp, r2, sent)
	m.transfer(t, sink, 4<<20, nil)
	if after := relayMetric(t, tp, r2, sent); after != before {
		t.Errorf("replica 2 forwarded %v packets with both nodes on it", after-before)
	}
	expectKeyNotLogged(t, tcpDB, r1.Logs()+r2.Logs()+m.a.logs.String()+m.b.logs.String())
}

// expectKeyNotLogged reads the relay mesh key from the database and checks
// that logs hold it in no encoding.
func expectKeyNotLogged(t *testing.T, db, logs string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored string
	if err := conn.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'relay_mesh_key'`).Scan(&stored); err != nil {
		t.Fatalf("the mesh key is not in meta: %v", err)
	}
	key, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(key) != 32 {
		t.Fatalf("mesh key %d bytes, %v", len(key), err)
	}
	for _, enc := range []string{stored, hex.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key)} {
		if strings.Contains(logs, enc) {
			t.Fatalf("the mesh key is in the logs (%q)", enc)
		}
	}
	if len(logs) < 1000 {
		t.Fatalf("only %d bytes of logs: the check saw nothing", len(logs))
	}
}
