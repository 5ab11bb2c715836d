package replicas_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
)

// startReplicas starts n replicas on one fresh database of pg.
func startReplicas(t *testing.T, pg *pgtest.Server, n int, o coordtest.Options) ([]*coordtest.Coordinator, string) {
	t.Helper()
	o.DB = pg.NewDatabase(t)
	var cs []*coordtest.Coordinator
	for range n {
		cs = append(cs, coordtest.Start(t, o))
	}
	return cs, o.DB
}

func urls(cs []*coordtest.Coordinator) []string {
	var l []string
	for _, c := range cs {
		l = append(l, c.URL)
	}
	return l
}

func pubKey(i int) meshapi.Key {
	var k meshapi.Key
	copy(k[:], fmt.Sprintf("replica-test-node-%08d-padding", i))
	return k
}

// node is one simulated mesh node: the real control client, registered,
// following its map stream in the background.
type node struct {
	c      *controlclient.Client
	id     meshapi.NodeID
	name   string
	ipv4   string
	cancel context.CancelFunc
	done   chan struct{} // closed when Follow returned
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
		t.Errorf("node %d: %v", i, err)
		return nil
	}
	n := &node{c: c, id: resp.Node.ID, name: resp.Node.Name, ipv4: resp.Node.IPv4.String(), done: make(chan struct{})}
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

// call makes one API call to one replica (no failover): it returns the
// status and the body.
func call(t *testing.T, method, base, path, secret string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func newSecret(t *testing.T) string {
	var b [32]byte
	rand.Read(b[:])
	return meshapi.NodeSecretPrefix + hex.EncodeToString(b[:])
}

// register registers node i on the replica at base only, with its own
// secret.
func register(t *testing.T, base, key, host string, i int) (meshapi.Node, string) {
	t.Helper()
	secret := newSecret(t)
	status, body := tryRegister(t, base, key, host, i, secret)
	if status != http.StatusOK {
		t.Fatalf("register %s on %s: %d %s", host, base, status, body)
	}
	return decodeRegistered(t, body), secret
}

// tryRegister sends node i's registration with secret to the replica at
// base once, and returns the answer.
func tryRegister(t *testing.T, base, key, host string, i int, secret string) (int, []byte) {
	t.Helper()
	return call(t, http.MethodPost, base, meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: key, Hostname: host, PublicKey: pubKey(i), Secret: secret})
}

// registerRetrying registers node i on the replica at base alone, sending
// the same request again (same secret) while the answer is a retryable
// 503, as a node does. It returns the node, its secret and how many 503s
// it got.
func registerRetrying(t *testing.T, base, key, host string, i int) (meshapi.Node, string, int) {
	t.Helper()
	secret := newSecret(t)
	deadline := time.Now().Add(30 * time.Second)
	for retries := 0; ; retries++ {
		status, body := tryRegister(t, base, key, host, i, secret)
		switch {
		case status == http.StatusOK:
			return decodeRegistered(t, body), secret, retries
		case status != http.StatusServiceUnavailable || time.Now().After(deadline):
			t.Errorf("register %s on %s: %d %s", host, base, status, body)
			return meshapi.Node{}, secret, retries
		}
		time.Sleep(20 * time.Millisecond) // a node's retry backoff, not synchronisation
	}
}

func decodeRegistered(t *testing.T, body []byte) meshapi.Node {
	t.Helper()
	var resp meshapi.RegisterResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Node
}

// stream is one map stream held on one replica, its lines recorded.
type stream struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []meshapi.MapMessage
	err    error
}

// openStream opens the map stream of the node with secret on the replica
// at base; since and epoch (if since is not 0) resume it.
func openStream(t *testing.T, base, secret string, since uint64, epoch string) *stream {
	t.Helper()
	q := url.Values{}
	if since != 0 {
		q.Set(meshapi.QuerySince, fmt.Sprint(since))
		q.Set(meshapi.QueryEpoch, epoch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+meshapi.PathMap+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("map stream on %s: %v", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("map stream on %s: %d %s", base, resp.StatusCode, b)
	}
	s := &stream{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m meshapi.MapMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				s.fail(err)
				return
			}
			s.mu.Lock()
			s.lines = append(s.lines, m)
			s.mu.Unlock()
		}
		s.fail(sc.Err())
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *stream) close() { s.cancel(); <-s.done }

// got returns the lines so far.
func (s *stream) got() []meshapi.MapMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]meshapi.MapMessage(nil), s.lines...)
}

// ended reports whether the server ended the stream.
func (s *stream) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// peers returns the peers the stream's lines make, applied in order.
func (s *stream) peers() map[meshapi.NodeID]meshapi.Peer {
	ps := map[meshapi.NodeID]meshapi.Peer{}
	for _, m := range s.got() {
		switch m.Type {
		case meshapi.MsgFull:
			clear(ps)
			fallthrough
		case meshapi.MsgUpsert:
			for _, p := range m.Peers {
				ps[p.ID] = p
			}
		case meshapi.MsgRemove:
			for _, id := range m.Removed {
				delete(ps, id)
			}
		}
	}
	return ps
}

// sql runs one query on the database and scans its one row.
func sql(t *testing.T, db, query string, dest ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, query).Scan(dest...)
}

// execSQL runs statements on the database, one at a time.
func execSQL(t *testing.T, db string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dbNode is a node's row, as the database holds it.
type dbNode struct {
	Name, IPv4, IPv6 string
	PublicKey        meshapi.Key
	Online           bool
	Home             string
}

// dbState is what the database holds: the nodes and the events' (seq,
// type, node) in order.
type dbState struct {
	nodes  map[meshapi.NodeID]dbNode
	events []meshapi.Event
}

func readDB(db string) (*dbState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	st := &dbState{nodes: map[meshapi.NodeID]dbNode{}}
	rows, _ := tx.Query(ctx, `SELECT id, name, ipv4, COALESCE(ipv6, ''), public_key, online, home FROM nodes`)
	var id int64
	var n dbNode
	var pub []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &n.Name, &n.IPv4, &n.IPv6, &pub, &n.Online, &n.Home}, func() error {
		copy(n.PublicKey[:], pub)
		st.nodes[meshapi.NodeID(id)] = n
		return nil
	}); err != nil {
		return nil, err
	}
	rows, _ = tx.Query(ctx, `SELECT seq, type, node_id FROM events ORDER BY seq`)
	var e meshapi.Event
	var typ string
	var node int64
	if _, err := pgx.ForEachRow(rows, []any{&e.Seq, &typ, &node}, func() error {
		e.Type, e.NodeID = meshapi.EventType(typ), meshapi.NodeID(node)
		st.events = append(st.events, e)
		return nil
	}); err != nil {
		return nil, err
	}
	return st, nil
}

// servesDB reports whether the replica c serves the database's state: its
// admin API lists the database's nodes (names, addresses, keys, online)
// and its events are the database's, numbered 1, 2, 3 … without a gap.
func servesDB(t *testing.T, c *coordtest.Coordinator, db string) (bool, string) {
	st, err := readDB(db)
	if err != nil {
		return false, err.Error()
	}
	listed := c.Nodes(t) // meshcoord nodes list --json
	if len(listed) != len(st.nodes) {
		return false, fmt.Sprintf("%s lists %d nodes, the database has %d", c.URL, len(listed), len(st.nodes))
	}
	for _, n := range listed {
		d, ok := st.nodes[n.ID]
		if !ok || d.Name != n.Name || d.IPv4 != n.IPv4.String() || d.IPv6 != addrOrNone(n.IPv6) ||
			d.PublicKey != n.PublicKey || d.Online != n.Online {
			return false, fmt.Sprintf("%s lists node %d as %s %s %s online=%v; the database: %+v (found %v)",
				c.URL, n.ID, n.Name, n.IPv4, n.IPv6, n.Online, d, ok)
		}
	}
	evs := c.Events(t)
	if len(evs) != len(st.events) {
		return false, fmt.Sprintf("%s has %d events, the database %d", c.URL, len(evs), len(st.events))
	}
	for i, e := range evs {
		d := st.events[i]
		if e.Seq != uint64(i+1) || e.Seq != d.Seq || e.Type != d.Type || e.NodeID != d.NodeID {
			return false, fmt.Sprintf("%s's event #%d is %d %s %d; the database's %d %s %d (want seq %d)",
				c.URL, i, e.Seq, e.Type, e.NodeID, d.Seq, d.Type, d.NodeID, i+1)
		}
	}
	return true, ""
}

// addrOrNone is a's text, or "" for a node without the address (no_ipv6).
func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// mapIsDB reports whether the map stream st of node self shows the
// database's nodes, self excepted, with their names and addresses.
func mapIsDB(st *stream, self meshapi.NodeID, db string) (bool, string) {
	state, err := readDB(db)
	if err != nil {
		return false, err.Error()
	}
	ps := st.peers()
	if len(ps) != len(state.nodes)-1 {
		return false, fmt.Sprintf("the stream shows %d peers, the database has %d other nodes", len(ps), len(state.nodes)-1)
	}
	for id, p := range ps {
		d, ok := state.nodes[id]
		if !ok || id == self || d.Name != p.Name || d.IPv4 != p.IPv4.String() || d.PublicKey != p.PublicKey {
			return false, fmt.Sprintf("the stream shows peer %d as %s %s; the database: %+v (found %v)", id, p.Name, p.IPv4, d, ok)
		}
	}
	return true, ""
}
