package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/internal/testcert"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// replicaTable stands where the replicas table of the shared database
// stands in meshcoord: the list every relay reads its peers from.
type replicaTable struct {
	mu    sync.Mutex
	peers map[string]relay.Peer
}

func (rt *replicaTable) set(id, url string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if url == "" {
		delete(rt.peers, id)
	} else {
		rt.peers[id] = relay.Peer{ID: id, URL: url}
	}
}

func (rt *replicaTable) list(context.Context) ([]relay.Peer, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []relay.Peer
	for _, p := range rt.peers {
		out = append(out, p)
	}
	return out, nil
}

// replica is one replica: a real coordinator (its nodes register and
// authenticate there) and a meshed relay in front of it on loopback.
type replica struct {
	id    string
	coord *coordinatortest.Server
	relay *relay.Server
	http  *httptest.Server
	reg   *prometheus.Registry
	url   string
	nodes []testNode
}

var testMeshKey = []byte("0123456789abcdef0123456789abcdef-test-mesh-key")

type meshOpts struct {
	key      []byte
	queueLen int
	addr     string // listen here (a restart on the same address)
	peerURL  func(id, url string) string
	coord    *coordinatortest.Server
	cert     *tls.Certificate // serve HTTPS with it
	trust    *tls.Config      // the links' TLS configuration
}

func startReplica(t *testing.T, rt *replicaTable, id string, o meshOpts) *replica {
	t.Helper()
	if o.key == nil {
		o.key = testMeshKey
	}
	r := &replica{id: id, coord: o.coord, reg: prometheus.NewRegistry()}
	if r.coord == nil {
		r.coord = coordinatortest.NewServer(t, coordinator.Config{})
	}
	r.relay = relay.New(relay.Config{
		Authenticate: r.coord.Coordinator.AuthenticateRelay,
		Active:       r.coord.Coordinator.NodeActive,
		QueueLen:     o.queueLen,
		WriteTimeout: 2 * time.Second,
		Mesh:         &relay.MeshConfig{ID: id, Key: o.key, Peers: rt.list, Refresh: 50 * time.Millisecond, TLS: o.trust},
		Log:          testLogger(t),
	})
	r.reg.MustRegister(r.relay.Metrics())
	r.http = httptest.NewUnstartedServer(r.relay.Handler(r.coord.Coordinator.Handler()))
	if o.addr != "" {
		ln, err := listenRetry(o.addr)
		if err != nil {
			t.Fatal(err)
		}
		r.http.Listener.Close()
		r.http.Listener = ln
	}
	if o.cert != nil {
		r.http.TLS = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
		r.http.StartTLS()
	} else {
		r.http.Start()
	}
	r.url = r.http.URL
	published := r.url
	if o.peerURL != nil {
		published = o.peerURL(id, r.url)
	}
	rt.set(id, published)
	t.Cleanup(r.stop)
	return r
}

// listenRetry listens on addr, which a replica that just stopped may
// still hold for a moment.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the replica's relay and HTTP server: its connections close,
// as a killed process's do.
func (r *replica) stop() {
	r.relay.Close()
	r.http.CloseClientConnections()
	r.http.Close()
}

// join registers n nodes on r's coordinator (keys numbered from first).
func (r *replica) join(t *testing.T, first, n int) []testNode {
	key := r.coord.CreateKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	var out []testNode
	for i := range n {
		out = append(out, register(t, r.coord, key.Key, first+i))
	}
	r.nodes = append(r.nodes, out...)
	return out
}

// connect opens n's relay connection to r and waits until it is there.
func (r *replica) connect(t *testing.T, n testNode, upgrade string) *relayClient {
	t.Helper()
	c, resp := dial(t, r.url, n.auth, upgrade)
	if c == nil {
		t.Fatalf("%s: relay refused %s: %v", r.id, n.name, resp.Status)
	}
	waitFor(t, n.name+" connected to "+r.id, func() bool { return r.relay.Connected(n.key) })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRemote waits until r knows node k is behind replica id.
func (r *replica) waitRemote(t *testing.T, k meshapi.Key, id string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s learns a node is on %s", r.id, id), func() bool {
		got, ok := r.relay.RemoteReplica(k)
		return ok && got == id
	})
}

// metric returns the value of a series of r's relay (0 if absent).
func (r *replica) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// expectRecv reads the next frame: a packet from src with body want.
func expectRecv(t *testing.T, c *relayClient, src meshapi.Key, want string) {
	t.Helper()
	f := c.next(t)
	if f.Type != relayproto.FrameRecv || f.Key != src || string(f.Packet) != want {
		t.Fatalf("got %v from %x: %q; want recv from %x: %q", f.Type, f.Key[:4], f.Packet, src[:4], want)
	}
}

// expectNothingQueued proves c has no frame waiting: a ping's pong is the
// very next frame.
func expectNothingQueued(t *testing.T, c *relayClient) {
	t.Helper()
	c.conn.Write(relayproto.AppendPing(nil, relayproto.FramePing, [8]byte{0xAA}))
	if f := c.next(t); f.Type != relayproto.FramePong || f.Ping != [8]byte{0xAA} {
		t.Fatalf("a frame was waiting: %v from %x: %q", f.Type, f.Key[:4], f.Packet)
	}
}

// TestMeshForwardsOneHop: three replicas, a node on each (plain upgrade
// and WebSocket). Every pair exchanges packets across replicas, each
// arrives once with its true source, and the relays count what they
// forwarded and the links they hold (two dialed, two accepted each).
func TestMeshForwardsOneHop(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	rs := []*replica{startReplica(t, rt, "r1", meshOpts{}), startReplica(t, rt, "r2", meshOpts{}), startReplica(t, rt, "r3", meshOpts{})}
	var nodes []testNode
	var conns []*relayClient
	for i, r := range rs {
		n := r.join(t, 10*(i+1), 1)[0]
		nodes = append(nodes, n)
		conns = append(conns, r.connect(t, n, []string{"raw", "ws", "raw"}[i]))
	}
	for i, r := range rs {
		for j, o := range rs {
			if i != j {
				r.waitRemote(t, nodes[j].key, o.id)
			}
		}
	}
	for i := range rs {
		for j := range rs {
			if i != j {
				msg := fmt.Sprintf("from %d to %d", i, j)
				conns[i].send(t, nodes[j].key, []byte(msg))
				expectRecv(t, conns[j], nodes[i].key, msg)
			}
		}
	}
	big := make([]byte, relayproto.MaxPacket)
	conns[0].send(t, nodes[2].key, big)
	if f := conns[2].next(t); f.Type != relayproto.FrameRecv || len(f.Packet) != relayproto.MaxPacket {
		t.Fatalf("a 64 KiB packet arrived as %v of %d bytes", f.Type, len(f.Packet))
	}
	for _, c := range conns {
		expectNothingQueued(t, c)
	}
	for i, r := range rs {
		wantSent, wantRecv := 2.0, 2.0
		if i == 0 {
			wantSent++
		}
		if i == 2 {
			wantRecv++
		}
		// A send is counted once its write returns, which may be just
		// after the packet arrived.
		var sent, recv float64
		waitFor(t, r.id+" counts what it forwarded", func() bool {
			sent = r.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "sent")
			recv = r.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "received")
			return sent >= wantSent && recv >= wantRecv
		})
		if sent != wantSent || recv != wantRecv {
			t.Errorf("%s forwarded %v sent, %v received; want %v, %v", r.id, sent, recv, wantSent, wantRecv)
		}
		if d, a := r.metric(t, "meshcoord_relay_links", "side", "dialed"), r.metric(t, "meshcoord_relay_links", "side", "accepted"); d != 2 || a != 2 {
			t.Errorf("%s links: %v dialed, %v accepted; want 2, 2", r.id, d, a)
		}
	}
	if b := rs[0].metric(t, "meshcoord_relay_forwarded_bytes_total", "direction", "sent"); b != float64(len("from 0 to 1")+len("from 0 to 2")+relayproto.MaxPacket) {
		t.Errorf("r1 forwarded %v bytes", b)
	}
}

// TestMeshFollowsANodeThatMoves: b moves from r2 to r3 (as a node does
// when its coordinator fails over); packets from a on r1 follow it, and
// while both r2 and r3 have it, the newest announcement wins.
func TestMeshFollowsANodeThatMoves(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1, r2 := startReplica(t, rt, "r1", meshOpts{}), startReplica(t, rt, "r2", meshOpts{})
	// r3 serves the same mesh as r2 (same coordinator, so b's secret works
	// on both), as replicas on one database do.
	r3 := startReplica(t, rt, "r3", meshOpts{coord: r2.coord})
	a := r1.connect(t, r1.join(t, 1, 1)[0], "raw")
	nb := r2.join(t, 2, 1)[0]
	b2 := r2.connect(t, nb, "raw")
	r1.waitRemote(t, nb.key, "r2")
	a.send(t, nb.key, []byte("to r2"))
	expectRecv(t, b2, r1.nodes[0].key, "to r2")

	b3 := r3.connect(t, nb, "raw")
	r1.waitRemote(t, nb.key, "r3")
	a.send(t, nb.key, []byte("to r3"))
	expectRecv(t, b3, r1.nodes[0].key, "to r3")
	b2.conn.Close()
	waitFor(t, "r2 sees b gone", func() bool { return !r2.relay.Connected(nb.key) })
	a.send(t, nb.key, []byte("still r3"))
	expectRecv(t, b3, r1.nodes[0].key, "still r3")
	if got, _ := r1.relay.RemoteReplica(nb.key); got != "r3" {
		t.Fatalf("b's old replica going quiet moved the route to %q", got)
	}
}

// TestMeshDropsADeadReplicasNodes: r2 dies (its connections close as a
// killed process's do). r1 drops what r2 announced: a's packets for b get
// peer-gone and are not sent anywhere. r2 comes back on the same address,
// r1's link reconnects by itself, and b is reachable again.
func TestMeshDropsADeadReplicasNodes(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1, r2 := startReplica(t, rt, "r1", meshOpts{}), startReplica(t, rt, "r2", meshOpts{})
	na := r1.join(t, 1, 1)[0]
	a := r1.connect(t, na, "raw")
	nb := r2.join(t, 2, 1)[0]
	b := r2.connect(t, nb, "raw")
	r1.waitRemote(t, nb.key, "r2")
	a.send(t, nb.key, []byte("before"))
	expectRecv(t, b, na.key, "before")

	addr := r2.http.Listener.Addr().String()
	r2.stop()
	waitFor(t, "r1 forgets b", func() bool { _, ok := r1.relay.RemoteReplica(nb.key); return !ok })
	waitFor(t, "r1's links to r2 down", func() bool { d, acc := r1.relay.Links(); return len(d) == 0 && acc == 0 })
	sent := r1.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "sent")
	a.send(t, nb.key, []byte("while r2 is dead"))
	if f := a.next(t); f.Type != relayproto.FramePeerGone || f.Key != nb.key {
		t.Fatalf("a got %v, want peer-gone for b", f.Type)
	}
	if got := r1.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "sent"); got != sent {
		t.Fatalf("r1 forwarded %v packets to a dead replica", got-sent)
	}
	if r1.metric(t, "meshcoord_relay_remote_nodes") != 0 {
		t.Fatal("r1 still counts remote nodes")
	}

	r2b := startReplica(t, rt, "r2", meshOpts{coord: r2.coord, addr: addr})
	b = r2b.connect(t, nb, "raw")
	r1.waitRemote(t, nb.key, "r2")
	a.send(t, nb.key, []byte("after"))
	// The packet sent while r2 was dead was held on r1 (2 s, as for any
	// node not connected yet): it may come first if r2 came back in time.
	f := b.next(t)
	if string(f.Packet) == "while r2 is dead" {
		f = b.next(t)
	}
	if f.Type != relayproto.FrameRecv || f.Key != na.key || string(f.Packet) != "after" {
		t.Fatalf("b got %v %q, want \"after\" from a", f.Type, f.Packet)
	}
}

// TestMeshNeverForwardsTwice: a forward that reaches a relay for a node
// that is not connected there (it is on a third replica) is dropped, not
// sent on; and a relay announces only its own nodes, never what it heard
// from others. The test dials r2 as a replica that holds the mesh key.
func TestMeshNeverForwardsTwice(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1, r2, r3 := startReplica(t, rt, "r1", meshOpts{}), startReplica(t, rt, "r2", meshOpts{}), startReplica(t, rt, "r3", meshOpts{})
	na := r1.join(t, 1, 1)[0]
	a := r1.connect(t, na, "raw")
	nb := r2.join(t, 2, 1)[0]
	r2.connect(t, nb, "raw")
	nc := r3.join(t, 3, 1)[0]
	c := r3.connect(t, nc, "raw")
	r2.waitRemote(t, nc.key, "r3")
	r2.waitRemote(t, na.key, "r1")

	link, fr, err := dialAsReplica(r2.url, "rX", "r2", testMeshKey)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	// r2 announces b, its own node, and nothing it heard of a or c.
	link.SetReadDeadline(time.Now().Add(20 * time.Second))
	f, err := fr.Next()
	if err != nil || f.Type != relayproto.FramePresence || f.Op != relayproto.PresenceHere || len(f.Keys) != 1 || f.Keys[0] != nb.key {
		t.Fatalf("r2 announced %v %v (op %d): want only b", f.Type, f.Keys, f.Op)
	}
	link.Write(relayproto.AppendForward(nil, nc.key, na.key, []byte("second hop?")))
	waitFor(t, "r2 drops the forward for c", func() bool { return r2.metric(t, "meshcoord_relay_drops_total", "reason", "forward_not_here") == 1 })
	if n := r2.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "sent"); n != 0 {
		t.Fatalf("r2 sent %v forwards on", n)
	}
	if n := r3.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "received"); n != 0 {
		t.Fatalf("r3 received %v forwards", n)
	}
	expectNothingQueued(t, c)
	// The ordinary path still works: a → c directly over r1's link to r3.
	a.send(t, nc.key, []byte("one hop"))
	expectRecv(t, c, na.key, "one hop")
	if n := r3.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "received"); n != 1 {
		t.Fatalf("r3 received %v forwards, want 1", n)
	}
}

// dialAsReplica opens a replica link to the relay at base as replica id,
// expecting relay id, with key. It returns the link after sending the
// dialer's proof (an error if the relay's proof does not verify).
func dialAsReplica(base, id, relayID string, key []byte) (net.Conn, *relayproto.Reader, error) {
	c, br, resp, mine, err := replicaUpgrade(base, id, "")
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("relay answered %s", resp.Status)
	}
	theirs, err := relayproto.ParseNonce(resp.Header.Get(relayproto.HeaderNonce))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	proof, _ := relayproto.DecodeProof(resp.Header.Get(relayproto.HeaderProof))
	if !relayproto.ProofEqual(proof, relayproto.LinkProof(key, relayproto.RoleRelay, id, relayID, mine, theirs)) {
		c.Close()
		return nil, nil, errors.New("the relay's proof does not verify")
	}
	c.Write(relayproto.AppendMeshAuth(nil, relayproto.LinkProof(key, relayproto.RoleDialer, id, relayID, mine, theirs)))
	return c, relayproto.NewReader(br, 0), nil
}

// replicaUpgrade sends a replica link upgrade (with a node's
// Authorization too, when auth is set) and reads the answer.
func replicaUpgrade(base, id, auth string) (net.Conn, *bufio.Reader, *http.Response, relayproto.Nonce, error) {
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, nil, nil, relayproto.Nonce{}, err
	}
	mine := relayproto.NewNonce()
	req, _ := http.NewRequest("GET", base+meshapi.PathRelay, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", relayproto.Protocol)
	req.Header.Set(relayproto.HeaderReplica, id)
	req.Header.Set(relayproto.HeaderNonce, mine.String())
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Write(c)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, nil, nil, mine, err
	}
	return c, br, resp, mine, nil
}

// TestNodeCannotActAsAReplica: a node holds its own secret but not the
// mesh key. Over every door a node has, it cannot get a packet delivered
// as a forward with a forged source, nor learn presence: a replica upgrade
// with its node secret and a made-up proof is cut off at the proof; frames
// sent without a proof end the connection; link frames on its own node
// connection end that connection; a relay with another mesh key fails
// both ways; and a relay without meshing refuses replica upgrades.
func TestNodeCannotActAsAReplica(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1 := startReplica(t, rt, "r1", meshOpts{})
	nodes := r1.join(t, 1, 3)
	attacker, victim, forged := nodes[0], nodes[1], nodes[2]
	v := r1.connect(t, victim, "raw")
	injected := func(c net.Conn) {
		c.Write(relayproto.AppendForward(nil, victim.key, forged.key, []byte("forged")))
	}
	expectCut := func(what string, c net.Conn, fr *relayproto.Reader) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			f, err := fr.Next()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: the connection stayed open", what)
				}
				return
			}
			if f.Type == relayproto.FramePresence {
				t.Fatalf("%s: got presence", what)
			}
		}
	}

	// 1. A replica upgrade with the node's secret and a made-up proof.
	c, br, resp, _, err := replicaUpgrade(r1.url, "node-as-replica", attacker.auth)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.Write(relayproto.AppendMeshAuth(nil, [relayproto.ProofLen]byte{1, 2, 3}))
	injected(c)
	expectCut("made-up proof", c, relayproto.NewReader(br, 0))

	// 2. Frames without any proof.
	c, br, _, _, err = replicaUpgrade(r1.url, "node-as-replica", attacker.auth)
	if err != nil {
		t.Fatal(err)
	}
	injected(c)
	expectCut("no proof", c, relayproto.NewReader(br, 0))

	// 3. Link frames on the node's own connection.
	ac := r1.connect(t, attacker, "raw")
	injected(ac.conn)
	expectCut("forward on a node connection", ac.conn, ac.fr)
	ac = r1.connect(t, attacker, "ws")
	ac.conn.Write(relayproto.AppendPresence(nil, relayproto.PresenceHere, []meshapi.Key{victim.key}))
	expectCut("presence on a node connection", ac.conn, ac.fr)

	// 4. Another mesh key: the relay's proof does not verify, and ours is
	// refused.
	if _, _, err := dialAsReplica(r1.url, "rX", "r1", []byte("another key, 32 bytes and longer, not the mesh's")); err == nil {
		t.Fatal("a relay's proof verified under another mesh key")
	}
	c, br, resp, mine, _ := replicaUpgrade(r1.url, "rX", "")
	theirs, _ := relayproto.ParseNonce(resp.Header.Get(relayproto.HeaderNonce))
	c.Write(relayproto.AppendMeshAuth(nil, relayproto.LinkProof([]byte("another key, 32 bytes and longer, not the mesh's"), relayproto.RoleDialer, "rX", "r1", mine, theirs)))
	injected(c)
	expectCut("wrong mesh key", c, relayproto.NewReader(br, 0))
	// A proof replayed from one handshake fails the next: the nonces differ.
	c, br, resp, mine, _ = replicaUpgrade(r1.url, "rX", "")
	old := relayproto.LinkProof(testMeshKey, relayproto.RoleDialer, "rX", "r1", mine, relayproto.NewNonce())
	c.Write(relayproto.AppendMeshAuth(nil, old))
	injected(c)
	expectCut("proof for other nonces", c, relayproto.NewReader(br, 0))

	expectNothingQueued(t, v)
	if n := r1.metric(t, "meshcoord_relay_links", "side", "accepted"); n != 0 {
		t.Fatalf("%v links accepted", n)
	}
	if n := r1.metric(t, "meshcoord_relay_forwarded_packets_total", "direction", "received"); n != 0 {
		t.Fatalf("%v forwards taken", n)
	}

	// 5. A relay without meshing refuses replica upgrades outright.
	plain, _ := setup(t, 1)
	_, _, resp, _, err = replicaUpgrade(plain.URL, "rX", "")
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unmeshed relay answered %v, %v; want 403", resp, err)
	}
}

// testLogger shows warnings and errors with the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// pausableProxy passes TCP connections to target; while paused it stops
// reading from the dialing side, as a stalled peer replica would.
type pausableProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
}

func startProxy(t *testing.T, target string) *pausableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausableProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() { ln.Close(); p.pause(false) })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go func() { io.Copy(in, out); in.Close() }()
			go func() { p.copyGated(out, in); out.Close() }()
		}
	}()
	return p
}

func (p *pausableProxy) copyGated(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.paused {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pausableProxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

// TestMeshStalledLinkBlocksNoLocalDelivery: r1's link to r2 stalls (r2
// stops reading) while a, on r1, floods b, on r2, with far more than the
// link's queue and socket buffers hold. a's writes never wait, c and d
// (both on r1) exchange every packet meanwhile, r1 counts what it dropped
// for the link, and once r2 reads again the link is back and a reaches b.
func TestMeshStalledLinkBlocksNoLocalDelivery(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	var proxy *pausableProxy
	r1 := startReplica(t, rt, "r1", meshOpts{queueLen: 64})
	r2 := startReplica(t, rt, "r2", meshOpts{queueLen: 64, peerURL: func(id, u string) string {
		pu, _ := url.Parse(u)
		proxy = startProxy(t, pu.Host)
		return "http://" + proxy.ln.Addr().String()
	}})
	ns := r1.join(t, 1, 3)
	a, c, d := r1.connect(t, ns[0], "raw"), r1.connect(t, ns[1], "raw"), r1.connect(t, ns[2], "raw")
	nb := r2.join(t, 4, 1)[0]
	b := r2.connect(t, nb, "raw")
	r1.waitRemote(t, nb.key, "r2")
	a.send(t, nb.key, []byte("before"))
	expectRecv(t, b, ns[0].key, "before")

	proxy.pause(true)
	const flood = 20000
	done := make(chan error, 1)
	go func() {
		frame := relayproto.AppendPacket(nil, relayproto.FrameSend, nb.key, make([]byte, 1200))
		batch := bytes.Repeat(frame, 100)
		for i := 0; i < flood; i += 100 {
			a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := a.conn.Write(batch); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range 200 {
		c.send(t, ns[2].key, fmt.Appendf(nil, "%d", i))
		expectRecv(t, d, ns[1].key, fmt.Sprint(i))
	}
	if err := <-done; err != nil {
		t.Fatalf("a's flood was blocked: %v", err)
	}
	waitFor(t, "r1 drops packets for the stalled link", func() bool {
		return r1.metric(t, "meshcoord_relay_drops_total", "reason", "link_queue_full") > 0
	})

	proxy.pause(false)
	// b reads what got through, then a's marker once the link is up again.
	deadline := time.Now().Add(30 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("a never reached b again")
		}
		a.send(t, nb.key, []byte("again"))
		b.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			f, err := b.fr.Next()
			if err != nil {
				break
			}
			if string(f.Packet) == "again" {
				got = true
				break
			}
		}
	}
}

// TestMeshLinksOverHTTPS: replicas serving HTTPS with certificates of a
// private CA link when they trust that CA; a replica that does not (the
// system's roots) fails every attempt to dial the others, counted, while
// the others' links to it come up.
func TestMeshLinksOverHTTPS(t *testing.T) {
	ca := testcert.NewCA(t, "replicas")
	cert := ca.Issue(t, net.IPv4(127, 0, 0, 1)).TLS(t)
	trust := &tls.Config{RootCAs: ca.Pool()}
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1 := startReplica(t, rt, "r1", meshOpts{cert: &cert, trust: trust})
	r2 := startReplica(t, rt, "r2", meshOpts{cert: &cert, trust: trust})
	r3 := startReplica(t, rt, "r3", meshOpts{cert: &cert})
	if !strings.HasPrefix(r1.url, "https://") {
		t.Fatalf("r1 serves %s", r1.url)
	}
	waitFor(t, "r1 and r2 link with each other and with r3", func() bool {
		d1, _ := r1.relay.Links()
		d2, _ := r2.relay.Links()
		_, acc3 := r3.relay.Links()
		return len(d1) == 2 && len(d2) == 2 && acc3 == 2
	})
	waitFor(t, "r3 fails to dial both", func() bool {
		return r3.metric(t, "meshcoord_relay_link_failures_total") >= 2
	})
	if d3, _ := r3.relay.Links(); len(d3) != 0 {
		t.Fatalf("r3, trusting no private CA, linked to %v", d3)
	}
	if n := r1.metric(t, "meshcoord_relay_link_failures_total"); n != 0 {
		t.Fatalf("r1 failed %v times", n)
	}
}

// TestMeshPresenceConvergesUnderChurn: 40 nodes connect to r2 and drop,
// four rounds, without waiting for anything in between (so connections
// register and end while r2's writer drains presence); the odd ones stay
// connected after the last round. In the end r1 knows exactly those, so
// coalesced presence lost no change.
func TestMeshPresenceConvergesUnderChurn(t *testing.T) {
	rt := &replicaTable{peers: map[string]relay.Peer{}}
	r1, r2 := startReplica(t, rt, "r1", meshOpts{}), startReplica(t, rt, "r2", meshOpts{})
	nodes := r2.join(t, 100, 40)
	waitFor(t, "r1 linked to r2", func() bool { d, _ := r1.relay.Links(); return len(d) == 1 })
	for round := range 4 {
		var conns []*relayClient
		for _, n := range nodes {
			c, resp := dial(t, r2.url, n.auth, "raw")
			if c == nil {
				t.Fatalf("%s refused: %v", n.name, resp.Status)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			if round < 3 || i%2 == 0 {
				c.conn.Close()
			}
		}
	}
	waitFor(t, "r2 holds the odd nodes only", func() bool {
		for i, n := range nodes {
			if r2.relay.Connected(n.key) != (i%2 == 1) {
				return false
			}
		}
		return true
	})
	waitFor(t, "r1 knows the odd nodes on r2 and no even one", func() bool {
		for i, n := range nodes {
			if _, ok := r1.relay.RemoteReplica(n.key); ok != (i%2 == 1) {
				return false
			}
		}
		return true
	})
	if got := r1.metric(t, "meshcoord_relay_remote_nodes"); got != 20 {
		t.Fatalf("r1 counts %v remote nodes, want 20", got)
	}
}
