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
