package mesh

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// recorder is a Listener that writes down what it heard.
type recorder struct{ heard []string }

func (r *recorder) NodeAdded(n *Node) {
	r.heard = append(r.heard, fmt.Sprintf("added %d %s", n.ID, n.Name))
}
func (r *recorder) NodeChanged(n *Node, before *meshapi.Node) {
	r.heard = append(r.heard, fmt.Sprintf("changed %d %s online=%v->%v out=%v", n.ID, n.Name, before.Online, n.Online, n.LoggedOut))
}
func (r *recorder) NodeRemoved(n *Node) {
	r.heard = append(r.heard, fmt.Sprintf("removed %d %s", n.ID, n.Name))
}
func (r *recorder) PolicyChanged(p *Policy) {
	r.heard = append(r.heard, fmt.Sprintf("policy %d", p.Version))
}

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

const grace = 5 * time.Second

func newMesh(t *testing.T, l Listener) *Mesh {
	t.Helper()
	snap := &store.Snapshot{Meta: map[string]string{MetaULA: "fd01:2:3::/48"}}
	m, _, err := Load(Config{BaseDomain: "mesh.test", EphemeralTimeout: time.Minute, ReconnectGrace: grace}, snap, time.Time{}, t0, l)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newKey(t *testing.T, m *Mesh, ephemeral, reusable bool) authkey.Key {
	t.Helper()
	k, err := authkey.New()
	if err != nil {
		t.Fatal(err)
	}
	m.CreateKey(store.KeyRecord{ID: k.ID, Hash: k.Hash(), Ephemeral: ephemeral, Reusable: reusable, Created: t0}, t0)
	return k
}

func registration(k authkey.Key, host string, b byte) *Registration {
	_, h := authkey.NewNodeSecret()
	return &Registration{Key: k, Hostname: host, PublicKey: meshapi.Key{b}, SecretHash: h}
}

// state is everything a Mesh holds, in a comparable form.
func state(m *Mesh) string {
	var lines []string
	for _, n := range m.Nodes() {
		lines = append(lines, fmt.Sprintf("%+v %x %v", n.View(), n.SecretHash[:4], n.GCTimeout))
	}
	m.Keys(func(k *Key) { lines = append(lines, fmt.Sprintf("%+v", k.KeyRecord)) })
	slices.Sort(lines)
	p := m.Policy()
	return fmt.Sprintf("%s\nlast node %d, last event %d, policy %d %q, pool %d",
		strings.Join(lines, "\n"), m.lastNodeID, m.LastEvent(), p.Version, p.Source, m.pool.InUse())
}

// TestAFollowerReachesTheSameState: a second Mesh that only applies the
// first one's changes, in order, ends in the same state and hears the same
// effects: the seam a replica follows the change log with.
func TestAFollowerReachesTheSameState(t *testing.T) {
	var lr, fr recorder
	leader, follower := newMesh(t, &lr), newMesh(t, &fr)
	var log []Change
	do := func(ch Change) {
		log = append(log, ch)
		if err := follower.Apply(ch); err != nil {
			t.Fatalf("follower: %v", err)
		}
	}
	now := t0
	eph, ch := newKeyChange(t, leader, true, true, now)
	do(ch)
	plain, ch := newKeyChange(t, leader, false, true, now)
	do(ch)
	reg := func(k authkey.Key, host string, b byte) *Node {
		n, repeated, ch, e := leader.Register(registration(k, host, b), now)
		if e != nil || repeated {
			t.Fatalf("register %s: %v", host, e)
		}
		do(ch)
		return n
	}
	web := reg(eph, "web", 1)
	web1 := reg(eph, "web", 2)
	db := reg(plain, "db", 3)
	do(leader.Connect(web, "a", now))
	do(leader.Connect(web1, "a", now))
	do(leader.SetEndpoints(db, []netip.AddrPort{netip.MustParseAddrPort("198.18.0.9:41641")}, now))
	now = now.Add(time.Second)
	do(leader.GoOffline(web1, Absence{LastSeen: now, ClockFrom: now}, now.Add(grace)))
	now = now.Add(time.Hour) // web-1 long gone: a newcomer takes its name
	again := reg(eph, "web", 4)
	if again.Name != "web-1" || leader.Node(web1.ID) != nil {
		t.Fatalf("the newcomer got %q; web-1 still there: %v", again.Name, leader.Node(web1.ID) != nil)
	}
	ch, _ = leader.Logout(db, meshapi.ReasonLogout, "logout", now)
	do(ch)
	ch, e := leader.Rename(web, "front", now)
	if e != nil {
		t.Fatal(e)
	}
	do(ch)
	ch, _ = leader.SetPolicy([]byte(`{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}`), now)
	do(ch)
	_, ch = leader.RevokeKey(plain.ID, now)
	do(ch)
	do(leader.Delete(again, meshapi.ReasonAdmin, "", now))

	if got, want := state(follower), state(leader); got != want {
		t.Fatalf("the follower's state differs:\n%s\nthe leader's:\n%s", got, want)
	}
	if !reflect.DeepEqual(fr.heard, lr.heard) {
		t.Fatalf("the follower heard\n%s\nthe leader\n%s", strings.Join(fr.heard, "\n"), strings.Join(lr.heard, "\n"))
	}
	// Events are numbered 1, 2, 3, … across the changes.
	var seqs []uint64
	for _, ch := range log {
		for _, op := range ch {
			if ev, ok := op.Event(); ok {
				seqs = append(seqs, ev.Seq)
			}
		}
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("event numbers %v", seqs)
		}
	}
}

func newKeyChange(t *testing.T, m *Mesh, ephemeral, reusable bool, now time.Time) (authkey.Key, Change) {
	t.Helper()
	k, err := authkey.New()
	if err != nil {
		t.Fatal(err)
	}
	_, ch := m.CreateKey(store.KeyRecord{ID: k.ID, Hash: k.Hash(), Ephemeral: ephemeral, Reusable: reusable, Created: now}, now)
	return k, ch
}

// TestApplyRefusesWhatBreaksTheRules: a change that does not follow from
// the state (an event out of turn, a name taken, a node that is not there)
// is an error, not a silent divergence.
func TestApplyRefusesWhatBreaksTheRules(t *testing.T) {
	m := newMesh(t, &recorder{})
	k := newKey(t, m, true, true)
	n, _, _, e := m.Register(registration(k, "web", 1), t0)
	if e != nil {
		t.Fatal(e)
	}
	dup := n.Record()
	dup.ID, dup.IPv4, dup.SecretHash = 99, netip.MustParseAddr("100.64.0.99"), authkey.Hash{9}
	for name, ops := range map[string][]store.Op{
		"event out of turn": {store.AddEvent(meshapi.Event{Seq: m.LastEvent() + 2})},
		"name taken":        {store.PutNode(dup)},
		"no such node":      {store.DeleteNode(1234)},
	} {
		if err := m.Apply(ops); err == nil {
			t.Errorf("%s: applied", name)
		}
	}
}

// TestRefusedRegistrationChangesNothing: a registration the rules refuse
// makes no change and leaves the state as it was.
func TestRefusedRegistrationChangesNothing(t *testing.T) {
	m := newMesh(t, &recorder{})
	k := newKey(t, m, false, false) // one-off
	if _, _, _, e := m.Register(registration(k, "a", 1), t0); e != nil {
		t.Fatal(e)
	}
	before := state(m)
	_, _, ch, e := m.Register(registration(k, "b", 2), t0)
	if e == nil || e.Code != meshapi.ErrKeyUsed || len(ch) != 0 || state(m) != before {
		t.Fatalf("second use of a one-off key: %v, %d ops, state changed: %v", e, len(ch), state(m) != before)
	}
}

// TestRegisterWithoutIPv6: a node that says it cannot carry IPv6 gets an
// IPv4 address only: none in its record, its view, its peer entry, also on
// a follower and after a reload; the pool keeps the offset used and frees it
// with the node, and the next node still gets a full pair.
func TestRegisterWithoutIPv6(t *testing.T) {
	leader, follower := newMesh(t, &recorder{}), newMesh(t, &recorder{})
	do := func(ch Change) {
		t.Helper()
		if err := follower.Apply(ch); err != nil {
			t.Fatalf("follower: %v", err)
		}
	}
	k, ch := newKeyChange(t, leader, true, true, t0)
	do(ch)
	r := registration(k, "v4only", 1)
	r.NoIPv6 = true
	n, _, ch, e := leader.Register(r, t0)
	if e != nil {
		t.Fatal(e)
	}
	do(ch)
	if n.IPv4 != netip.MustParseAddr("100.64.0.1") || n.IPv6.IsValid() || n.Record().IPv6.IsValid() ||
		n.View().IPv6.IsValid() || n.Peer().IPv6.IsValid() {
		t.Fatalf("IPv4-only node: ipv4 %v, ipv6 %v (record %v, peer %v); want 100.64.0.1 and none",
			n.IPv4, n.IPv6, n.Record().IPv6, n.Peer().IPv6)
	}
	// A retry of the same registration gets the same node, whatever it says.
	r2 := *r
	r2.NoIPv6 = false
	if again, repeated, _, e := leader.Register(&r2, t0); e != nil || !repeated || again != n {
		t.Fatalf("retry: %v, repeated %v", e, repeated)
	}
	both, _, ch, e := leader.Register(registration(k, "both", 2), t0)
	if e != nil {
		t.Fatal(e)
	}
	do(ch)
	if both.IPv4 != netip.MustParseAddr("100.64.0.2") || both.IPv6 != netip.MustParseAddr("fd01:2:3::6440:2") {
		t.Fatalf("the next node got %v, %v; want 100.64.0.2 and its pair", both.IPv4, both.IPv6)
	}
	if got, want := state(follower), state(leader); got != want {
		t.Fatalf("the follower's state differs:\n%s\nthe leader's:\n%s", got, want)
	}

	// A reload from the records (what a restart loads) keeps it so.
	snap := &store.Snapshot{Meta: map[string]string{MetaULA: "fd01:2:3::/48", MetaLastNodeID: "2"}}
	leader.Keys(func(k *Key) { snap.Keys = append(snap.Keys, k.KeyRecord) })
	for _, x := range leader.Nodes() {
		snap.Nodes = append(snap.Nodes, x.Record())
	}
	reloaded, _, err := Load(Config{BaseDomain: "mesh.test", EphemeralTimeout: time.Minute, ReconnectGrace: grace}, snap, time.Time{}, t0, &recorder{})
	if err != nil {
		t.Fatalf("loading a mesh with an IPv4-only node: %v", err)
	}
	if x := reloaded.Node(n.ID); x == nil || x.IPv6.IsValid() || reloaded.pool.InUse() != 2 {
		t.Fatalf("after the reload: %+v, pool %d in use", x, reloaded.pool.InUse())
	}

	// Deleted, its address goes to the next node, with both families.
	do(leader.Delete(n, meshapi.ReasonAdmin, "", t0))
	next, _, ch, e := leader.Register(registration(k, "next", 3), t0)
	if e != nil {
		t.Fatal(e)
	}
	do(ch)
	if next.IPv4 != n.IPv4 || next.IPv6 != netip.MustParseAddr("fd01:2:3::6440:1") {
		t.Fatalf("after the deletion the next node got %v, %v; want %v and its pair", next.IPv4, next.IPv6, n.IPv4)
	}
	if got, want := state(follower), state(leader); got != want {
		t.Fatalf("the follower's state differs:\n%s\nthe leader's:\n%s", got, want)
	}
}
