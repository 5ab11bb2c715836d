package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

const wait = 10 * time.Second

// expect reads A's next change and checks its type and subject.
func expect(t *testing.T, ms *mapStream, typ meshapi.MessageType, id meshapi.NodeID, last *uint64) meshapi.MapMessage {
	t.Helper()
	m := ms.nextChange(wait)
	if m.Type != typ {
		t.Fatalf("got %s message %+v, want %s about node %d", m.Type, m, typ, id)
	}
	var subject meshapi.NodeID
	switch typ {
	case meshapi.MsgUpsert:
		if len(m.Peers) != 1 {
			t.Fatalf("upsert with %d peers", len(m.Peers))
		}
		subject = m.Peers[0].ID
	case meshapi.MsgRemove:
		subject = m.Removed[0]
	case meshapi.MsgPresence:
		subject = m.Presence[0].ID
	case meshapi.MsgSelf, meshapi.MsgFull:
		subject = m.Self.ID
	}
	if subject != id {
		t.Fatalf("%s message about node %d, want %d", typ, subject, id)
	}
	if m.Version <= *last {
		t.Fatalf("version %d after %d: versions must grow", m.Version, *last)
	}
	*last = m.Version
	return m
}

// TestMapDeltasSeenByPeer follows one node's stream while a peer joins,
// comes online, changes endpoints, goes offline, and is collected; and
// while other peers log out.
func TestMapDeltasSeenByPeer(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: 300 * time.Millisecond, EphemeralTimeout: time.Second})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	eph := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})

	a := e.register(plain.Key, "a")
	as := a.connect("")
	var v uint64
	full := expect(t, as, meshapi.MsgFull, a.id(), &v)
	if len(full.Peers) != 0 || full.Epoch != e.s.Epoch() || full.Domain != "mesh.internal" || len(full.Prefixes) != 2 || full.KeepaliveInterval == 0 {
		t.Fatalf("first full map %+v", full)
	}

	b := e.register(eph.Key, "b")
	up := expect(t, as, meshapi.MsgUpsert, b.id(), &v)
	if p := up.Peers[0]; p.Online || p.Name != "b" || p.IPv4 != b.reg.Node.IPv4 || p.PublicKey != b.reg.Node.PublicKey {
		t.Fatalf("upsert of b: %+v", p)
	}

	bs := b.connect("")
	bfull := bs.next(wait)
	if bfull.Type != meshapi.MsgFull || len(bfull.Peers) != 1 || bfull.Peers[0].ID != a.id() || bfull.Self.ID != b.id() {
		t.Fatalf("b's full map: %+v", bfull)
	}
	if !bfull.Peers[0].Online {
		t.Fatal("b's full map shows a offline")
	}
	if p := expect(t, as, meshapi.MsgPresence, b.id(), &v).Presence[0]; !p.Online {
		t.Fatalf("presence after b connected: %+v", p)
	}

	ep := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:41641")}
	if status, er := do(t, "POST", e.api.URL+meshapi.PathEndpoints, b.reg.Secret, meshapi.EndpointsRequest{Endpoints: ep}, nil); status != http.StatusNoContent {
		t.Fatalf("endpoints: %d %+v", status, er)
	}
	if p := expect(t, as, meshapi.MsgUpsert, b.id(), &v).Peers[0]; len(p.Endpoints) != 1 || p.Endpoints[0] != ep[0] {
		t.Fatalf("upsert after endpoints: %+v", p)
	}
	if self := bs.nextChange(wait); self.Type != meshapi.MsgSelf || self.Self.Endpoints[0] != ep[0] {
		t.Fatalf("b sees %+v, want its own self update", self)
	}

	// b crashes: offline after the grace, then collected (gc).
	e.drop(b)
	e.advance(300 * time.Millisecond)
	off := expect(t, as, meshapi.MsgPresence, b.id(), &v).Presence[0]
	if off.Online || off.LastSeen.IsZero() {
		t.Fatalf("presence after b dropped: %+v", off)
	}
	e.advance(time.Second)
	expect(t, as, meshapi.MsgRemove, b.id(), &v)
	if ev := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == b.id() }); ev.Reason != meshapi.ReasonGC {
		t.Fatalf("b deleted with reason %q", ev.Reason)
	}

	// c (not ephemeral) logs out: removed from maps, still listed.
	c := e.register(plain.Key, "c")
	expect(t, as, meshapi.MsgUpsert, c.id(), &v)
	c.connect("")
	expect(t, as, meshapi.MsgPresence, c.id(), &v)
	if status, _, out := c.logout(nil); status != http.StatusOK || out.Deleted {
		t.Fatalf("logout of c: %d %+v", status, out)
	}
	expect(t, as, meshapi.MsgRemove, c.id(), &v)
	if n, ok := e.nodeByName("c"); !ok || !n.LoggedOut || n.Online {
		t.Fatalf("c after logout: %+v listed=%v", n, ok)
	}

	// d (ephemeral) logs out: deleted at once.
	d := e.register(eph.Key, "d")
	expect(t, as, meshapi.MsgUpsert, d.id(), &v)
	if status, _, out := d.logout(nil); status != http.StatusOK || !out.Deleted {
		t.Fatalf("logout of d: %d %+v", status, out)
	}
	expect(t, as, meshapi.MsgRemove, d.id(), &v)
	if ev := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == d.id() }); ev.Reason != meshapi.ReasonLogout {
		t.Fatalf("d deleted with reason %q", ev.Reason)
	}

	// Renaming a: a gets its own self message.
	if _, err := e.ac.RenameNode(context.Background(), "a", "alpha"); err != nil {
		t.Fatal(err)
	}
	if self := expect(t, as, meshapi.MsgSelf, a.id(), &v); self.Self.Name != "alpha" || self.Self.FQDN != "alpha.mesh.internal" {
		t.Fatalf("self after rename: %+v", self.Self)
	}

	// A newcomer's full map holds exactly the live peers: a (renamed), not
	// the logged-out c, not the deleted b and d.
	f := e.register(plain.Key, "f")
	fs := f.connect("")
	ff := fs.next(wait)
	if len(ff.Peers) != 1 || ff.Peers[0].Name != "alpha" {
		t.Fatalf("newcomer's full map peers: %+v", ff.Peers)
	}
}

func TestStreamResume(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: 30 * time.Second})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	a := e.register(k.Key, "a")
	as := a.connect("")
	full := as.next(wait)
	as.close()
	e.streamGone(a)

	b := e.register(k.Key, "b") // a misses this
	// Resume within the log: a keepalive at a's version, then the delta.
	rs := a.connect(fmt.Sprintf("since=%d&epoch=%s", full.Version, full.Epoch))
	if ka := rs.next(wait); ka.Type != meshapi.MsgKeepalive || ka.Version != full.Version || ka.Epoch != full.Epoch {
		t.Fatalf("resume starts with %+v, want a keepalive at version %d", ka, full.Version)
	}
	if up := rs.nextChange(wait); up.Type != meshapi.MsgUpsert || up.Peers[0].ID != b.id() {
		t.Fatalf("resumed stream: %+v, want the missed upsert of b", up)
	}
	rs.close()
	e.streamGone(a)

	for name, q := range map[string]string{
		"another epoch":     fmt.Sprintf("since=%d&epoch=0000", full.Version),
		"older than memory": "since=1",
		"from the future":   fmt.Sprintf("since=%d", full.Version+1000),
	} {
		s := a.connect(q)
		if m := s.next(wait); m.Type != meshapi.MsgFull || len(m.Peers) != 1 {
			t.Errorf("%s: first message %s with %d peers, want a full map", name, m.Type, len(m.Peers))
		}
		s.close()
		e.streamGone(a)
	}
	if status, er := do(t, "GET", e.api.URL+meshapi.PathMap+"?since=abc", a.reg.Secret, nil, nil); status != http.StatusBadRequest {
		t.Fatalf("since=abc: %d %+v", status, er)
	}
	// Reconnects within the grace were invisible: no offline event.
	for _, ev := range e.events() {
		if ev.Type == meshapi.EventOffline {
			t.Fatalf("a reconnect within the grace produced %+v", ev)
		}
	}
}

func TestStreamClosedOnDeleteAndReplace(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	a := e.register(k.Key, "a")
	first := a.connect("")
	first.next(wait)
	// A second stream of the same node replaces the first.
	second := a.connect("")
	second.next(wait)
	if !first.ended(wait) {
		t.Fatal("the older stream was not closed when a newer one came")
	}
	if n, _ := e.nodeByName("a"); !n.Online {
		t.Fatal("a is not online with its newer stream")
	}
	if _, err := e.ac.DeleteNode(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if !second.ended(wait) {
		t.Fatal("deleting the node did not close its stream")
	}
	if status, er := do(t, "GET", e.api.URL+meshapi.PathMap, a.reg.Secret, nil, nil); status != http.StatusUnauthorized || er.Code != meshapi.ErrUnauthorized {
		t.Fatalf("stream of a deleted node: %d %+v", status, er)
	}
}

func TestLogoutOnlyAsThatNode(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	a, b := e.register(k.Key, "a"), e.register(k.Key, "b")
	bs := b.connect("")
	bs.next(wait)

	// a's secret naming b: refused, b untouched.
	status, er, _ := a.logout(meshapi.LogoutRequest{NodeID: b.id()})
	if status != http.StatusForbidden || er.Code != meshapi.ErrForbidden {
		t.Fatalf("logout of b with a's secret: %d %+v", status, er)
	}
	if n, _ := e.nodeByName("b"); n.LoggedOut || !n.Online {
		t.Fatalf("b after a refused logout: %+v", n)
	}
	if n, _ := e.nodeByName("a"); n.LoggedOut {
		t.Fatal("a refused logout logged a out")
	}
	// No secret, a malformed one, an unknown one: 401.
	for _, sec := range []string{"", "garbage", "mnode-" + fmt.Sprintf("%064x", 7)} {
		if status, er := do(t, "POST", e.api.URL+meshapi.PathLogout, sec, nil, nil); status != http.StatusUnauthorized || er.Code != meshapi.ErrUnauthorized {
			t.Fatalf("logout with secret %q: %d %+v", sec, status, er)
		}
	}
	if status, _ := do(t, "POST", e.api.URL+meshapi.PathLogout, b.reg.Secret, []byte(`{"node_id":"x"}`), nil); status != http.StatusBadRequest {
		t.Fatalf("bad logout body: %d", status)
	}
	// b logs itself out (naming itself is fine): stream closes, event says so.
	if status, er, out := b.logout(meshapi.LogoutRequest{NodeID: b.id()}); status != http.StatusOK || out.Deleted {
		t.Fatalf("b's own logout: %d %+v %+v", status, er, out)
	}
	if !bs.ended(wait) {
		t.Fatal("logout did not close b's stream")
	}
	e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventLoggedOut && ev.NodeID == b.id() })
	if status, er, _ := b.logout(nil); status != http.StatusUnauthorized || er.Code != meshapi.ErrLoggedOut {
		t.Fatalf("second logout: %d %+v", status, er)
	}
	if status, er := do(t, "GET", e.api.URL+meshapi.PathMap, b.reg.Secret, nil, nil); status != http.StatusUnauthorized || er.Code != meshapi.ErrLoggedOut {
		t.Fatalf("stream after logout: %d %+v", status, er)
	}
}

func TestKeepalive(t *testing.T) {
	e := newEnv(t, Config{KeepaliveInterval: 50 * time.Millisecond})
	k := e.createKey(meshapi.KeyCreateRequest{})
	a := e.register(k.Key, "a")
	as := a.connect("")
	full := as.next(wait)
	if time.Duration(full.KeepaliveInterval) != 50*time.Millisecond {
		t.Fatalf("full map announces keepalive %v", full.KeepaliveInterval)
	}
	for range 3 {
		ka := as.next(wait)
		if ka.Type != meshapi.MsgKeepalive || ka.Version != full.Version || ka.Epoch != full.Epoch {
			t.Fatalf("idle stream sent %+v, want keepalives at version %d", ka, full.Version)
		}
	}
}

func TestUnchangedEndpointsSendNothing(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	a, b := e.register(k.Key, "a"), e.register(k.Key, "b")
	as := a.connect("")
	as.next(wait)
	ep := meshapi.EndpointsRequest{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5000")}}
	for range 3 { // the first changes something; the two repeats do not
		if status, _ := do(t, "POST", e.api.URL+meshapi.PathEndpoints, b.reg.Secret, ep, nil); status != http.StatusNoContent {
			t.Fatalf("endpoints: %d", status)
		}
	}
	c := e.register(k.Key, "c")
	var v uint64
	expect(t, as, meshapi.MsgUpsert, b.id(), &v)
	expect(t, as, meshapi.MsgUpsert, c.id(), &v) // no repeats in between
}

// TestFullMapOfManyPeers: the full map spliced from cached peer encodings
// (and sent in several writes, being over 64 KiB) is one valid line holding
// every live peer exactly once.
func TestFullMapOfManyPeers(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	want := map[meshapi.NodeID]bool{}
	var deleted meshapi.NodeID
	for i := range 300 {
		c := e.register(k.Key, fmt.Sprintf("n%d", i))
		want[c.id()] = true
		if i == 7 {
			deleted = c.id()
		}
	}
	gone := e.register(k.Key, "gone")
	if status, _, _ := gone.logout(nil); status != http.StatusOK {
		t.Fatal("logout")
	}
	if _, err := e.ac.DeleteNode(context.Background(), "n7"); err != nil {
		t.Fatal(err)
	}
	self := e.register(k.Key, "self")
	full := self.connect("").next(wait) // decoded strictly: one valid object
	got := map[meshapi.NodeID]bool{}
	for _, p := range full.Peers {
		if got[p.ID] {
			t.Fatalf("peer %d twice", p.ID)
		}
		got[p.ID] = true
	}
	for id := range want {
		if !got[id] && id != deleted {
			t.Fatalf("peer %d missing from the full map", id)
		}
	}
	if got[deleted] || got[gone.id()] || got[self.id()] || len(got) != 299 {
		t.Fatalf("full map has %d peers (deleted: %v, logged out: %v, self: %v)", len(got), got[deleted], got[gone.id()], got[self.id()])
	}
}
