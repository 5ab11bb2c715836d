// Package storetest is the conformance suite every store.Store passes: the
// same tests, run against the SQLite file by the unit tests and against a
// real PostgreSQL server by the integration suite (integration/store), so
// the two backends cannot drift apart.
package storetest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Backend makes and opens databases of one kind.
type Backend struct {
	// New returns the location of a new, empty database (a file name, a
	// URL), removed when t ends.
	New func(t testing.TB) string
	// Open opens the store at loc.
	Open func(ctx context.Context, loc string) (store.Store, error)
	// Shared: any number of stores use one database at once (PostgreSQL
	// replicas), and each sees the others' writes. Otherwise a second
	// open of a database in use is refused (SQLite).
	Shared bool
}

// Run runs every conformance test against b.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"RoundTripAndReopen", testRoundTripAndReopen},
		{"ApplyIsAllOrNothing", testApplyIsAllOrNothing},
		{"UniqueNamesAddressesSecrets", testUnique},
		{"NodesWithoutIPv6", testNodesWithoutIPv6},
		{"EventsInOrderAndPaged", testEventsPaged},
		{"EventSeqNeverReused", testEventSeqNeverReused},
		{"PruneEventsKeepsTheNewest", testPruneEventsKeepsTheNewest},
		{"SecondOpen", testSecondOpen},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func open(t *testing.T, b Backend, loc string) store.Store {
	t.Helper()
	s, err := b.Open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SampleNode is a node record with every field set.
func SampleNode(id uint64, name, v4 string) store.NodeRecord {
	ip4 := netip.MustParseAddr(v4)
	a := ip4.As4()
	ip6 := netip.AddrFrom16([16]byte{0xfd, 1, 2, 3, 4, 5, 12: a[0], 13: a[1], 14: a[2], 15: a[3]})
	now := time.Unix(1700000000, 123456789)
	return store.NodeRecord{
		ID: id, Name: name, Hostname: strings.ToUpper(name), IPv4: ip4, IPv6: ip6,
		PublicKey: [32]byte{byte(id)}, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:51820")},
		Ephemeral: true, Tags: []string{"tag:ci"}, Created: now, LastSeen: now.Add(time.Second),
		KeyID: "0123456789abcdef", SecretHash: [32]byte{byte(id), 9}, Online: true,
		GCTimeout: 2 * time.Minute, GCDeadline: now.Add(time.Hour),
	}
}

func event(seq uint64, at time.Time) meshapi.Event {
	return meshapi.Event{Seq: seq, Time: at, Type: meshapi.EventOnline, NodeID: 1, Name: "a"}
}

func testRoundTripAndReopen(t *testing.T, b Backend) {
	ctx := context.Background()
	loc := b.New(t)
	s := open(t, b, loc)
	key := store.KeyRecord{ID: "0123456789abcdef", Hash: [32]byte{1, 2, 3}, Description: "ci", Ephemeral: true,
		Tags: []string{"tag:a", "tag:b"}, Created: time.Unix(1700000000, 0), Expires: time.Unix(1700086400, 0),
		EphemeralTimeout: 90 * time.Second, Uses: 3}
	n1, n2 := SampleNode(1, "web", "100.64.0.1"), SampleNode(2, "db", "100.64.0.2")
	n2.Tags, n2.Endpoints = nil, nil
	n2.LoggedOut, n2.Online, n2.Ephemeral = true, false, false
	n2.LastSeen, n2.GCDeadline, n2.GCTimeout = time.Time{}, time.Time{}, 0
	ev := meshapi.Event{Seq: 1, Time: time.Unix(1700000001, 5), Type: meshapi.EventDeleted, NodeID: 7, Name: "old",
		Reason: meshapi.ReasonGC, Detail: "deadline passed"}
	err := s.Apply(ctx, []store.Op{
		store.PutKey(key), store.PutNode(n1), store.PutNode(n2), store.DeleteNode(2), store.PutNode(n2),
		store.DeleteNode(99), store.AddEvent(ev), store.SetMeta("ula", "fd01::/48"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// An update replaces every field.
	key.Uses, key.Revoked = 4, time.Unix(1700000500, 7)
	n1.Online, n1.Name, n1.Endpoints = false, "web-2", []netip.AddrPort{netip.MustParseAddrPort("[fd00::1]:9")}
	if err := s.Apply(ctx, []store.Op{store.PutKey(key), store.PutNode(n1), store.SetMeta("ula", "fd02::/48")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, b, loc)
	defer s.Close()
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(snap.Meta, map[string]string{"ula": "fd02::/48"}) || snap.LastEventSeq != 1 {
		t.Fatalf("meta %v, last seq %d", snap.Meta, snap.LastEventSeq)
	}
	if len(snap.Keys) != 1 || !reflect.DeepEqual(snap.Keys[0], key) {
		t.Fatalf("keys = %+v\nwant %+v", snap.Keys, key)
	}
	n2.Tags, n2.Endpoints = []string{}, []netip.AddrPort{} // stored as [] and loaded as empty, never null
	if len(snap.Nodes) != 2 || !reflect.DeepEqual(snap.Nodes[0], n1) || !reflect.DeepEqual(snap.Nodes[1], n2) {
		t.Fatalf("nodes = %+v\nwant %+v and %+v", snap.Nodes, n1, n2)
	}
	evs, err := s.Events(ctx, 0, 10)
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(ev.Time) {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	evs[0].Time = ev.Time
	if !reflect.DeepEqual(evs[0], ev) {
		t.Fatalf("event = %+v\nwant %+v", evs[0], ev)
	}
}

func testApplyIsAllOrNothing(t *testing.T, b Backend) {
	ctx := context.Background()
	s := open(t, b, b.New(t))
	defer s.Close()
	if err := s.Apply(ctx, []store.Op{store.PutNode(SampleNode(1, "web", "100.64.0.1")), store.SetMeta("x", "0")}); err != nil {
		t.Fatal(err)
	}
	// The second node steals the name: the whole batch fails, its first
	// ops included.
	err := s.Apply(ctx, []store.Op{store.SetMeta("x", "1"), store.PutNode(SampleNode(3, "other", "100.64.0.3")),
		store.PutNode(SampleNode(2, "web", "100.64.0.2"))})
	if err == nil {
		t.Fatal("duplicate name accepted")
	}
	if !strings.Contains(err.Error(), "node 2") {
		t.Errorf("the error does not name the failing node: %v", err)
	}
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Meta["x"] != "0" || len(snap.Nodes) != 1 {
		t.Fatalf("failed batch left traces: meta %v, %d nodes", snap.Meta, len(snap.Nodes))
	}
	// The store still works after a failed batch.
	if err := s.Apply(ctx, []store.Op{store.SetMeta("x", "2")}); err != nil {
		t.Fatal(err)
	}
}

func testUnique(t *testing.T, b Backend) {
	ctx := context.Background()
	s := open(t, b, b.New(t))
	defer s.Close()
	if err := s.Apply(ctx, []store.Op{store.PutNode(SampleNode(1, "web", "100.64.0.1"))}); err != nil {
		t.Fatal(err)
	}
	sameV4 := SampleNode(2, "db", "100.64.0.1")
	sameV6 := SampleNode(2, "db", "100.64.0.2")
	sameV6.IPv6 = SampleNode(1, "web", "100.64.0.1").IPv6
	sameSecret := SampleNode(2, "db", "100.64.0.2")
	sameSecret.SecretHash = SampleNode(1, "web", "100.64.0.1").SecretHash
	for what, n := range map[string]store.NodeRecord{"ipv4": sameV4, "ipv6": sameV6, "secret hash": sameSecret} {
		if err := s.Apply(ctx, []store.Op{store.PutNode(n)}); err == nil {
			t.Errorf("a second node with the same %s was stored", what)
		}
	}
	// Freed by a deletion in the same batch: allowed, as a reclaim does.
	if err := s.Apply(ctx, []store.Op{store.DeleteNode(1), store.PutNode(SampleNode(2, "web", "100.64.0.1"))}); err != nil {
		t.Fatalf("reusing a name and address freed in the same batch: %v", err)
	}
}

// Nodes registered with no_ipv6 have no IPv6 address: stored as none (not
// as some placeholder), loaded as the zero Addr, and any number of them
// coexist with each other and with nodes that have one.
func testNodesWithoutIPv6(t *testing.T, b Backend) {
	ctx := context.Background()
	loc := b.New(t)
	s := open(t, b, loc)
	with := SampleNode(1, "web", "100.64.0.1")
	a, c := SampleNode(2, "v4a", "100.64.0.2"), SampleNode(3, "v4b", "100.64.0.3")
	a.IPv6, c.IPv6 = netip.Addr{}, netip.Addr{}
	if err := s.Apply(ctx, []store.Op{store.PutNode(with), store.PutNode(a), store.PutNode(c)}); err != nil {
		t.Fatalf("storing two nodes without IPv6 beside one with: %v", err)
	}
	// An update keeps it without; a node with an address still may not take
	// another's.
	a.Online = false
	if err := s.Apply(ctx, []store.Op{store.PutNode(a)}); err != nil {
		t.Fatal(err)
	}
	dup := SampleNode(4, "dup", "100.64.0.4")
	dup.IPv6 = with.IPv6
	if err := s.Apply(ctx, []store.Op{store.PutNode(dup)}); err == nil {
		t.Error("a second node with the same IPv6 address was stored")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, b, loc)
	defer s.Close()
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 3 {
		t.Fatalf("loaded %d nodes, want 3: %+v", len(snap.Nodes), snap.Nodes)
	}
	for i, want := range []store.NodeRecord{with, a, c} {
		if !reflect.DeepEqual(snap.Nodes[i], want) {
			t.Errorf("node %d = %+v\nwant %+v", i, snap.Nodes[i], want)
		}
	}
	if snap.Nodes[1].IPv6.IsValid() || !snap.Nodes[0].IPv6.IsValid() {
		t.Errorf("IPv6 after reload: %v and %v; want %v and none", snap.Nodes[0].IPv6, snap.Nodes[1].IPv6, with.IPv6)
	}
}

func testEventsPaged(t *testing.T, b Backend) {
	ctx := context.Background()
	s := open(t, b, b.New(t))
	defer s.Close()
	base := time.Unix(1700000000, 0)
	var ops []store.Op
	for i := range 25 {
		ops = append(ops, store.AddEvent(event(uint64(i+1), base.Add(time.Duration(i)*time.Second))))
	}
	if err := s.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for after := uint64(0); ; {
		evs, err := s.Events(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			got = append(got, e.Seq)
		}
		after = evs[len(evs)-1].Seq
	}
	if len(got) != 25 || got[0] != 1 || got[24] != 25 {
		t.Fatalf("paged events: %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("events out of order or with gaps: %v", got)
		}
	}
}

func testEventSeqNeverReused(t *testing.T, b Backend) {
	ctx := context.Background()
	s := open(t, b, b.New(t))
	defer s.Close()
	at := time.Unix(1700000000, 0)
	if err := s.Apply(ctx, []store.Op{store.AddEvent(event(1, at))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, []store.Op{store.AddEvent(event(1, at))}); err == nil {
		t.Fatal("an event number was stored twice")
	}
}

func testPruneEventsKeepsTheNewest(t *testing.T, b Backend) {
	ctx := context.Background()
	loc := b.New(t)
	s := open(t, b, loc)
	base := time.Unix(1700000000, 0)
	var ops []store.Op
	for i := range 10 {
		ops = append(ops, store.AddEvent(event(uint64(i+1), base.Add(time.Duration(i)*time.Minute))))
	}
	if err := s.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	// Older than minute 4: seq 1..4, at most 3 per call, oldest first.
	if n, through, err := s.PruneEvents(ctx, base.Add(4*time.Minute), 3); err != nil || n != 3 || through != 3 {
		t.Fatalf("first prune: %d through %d, %v; want 3 through 3", n, through, err)
	}
	if n, through, err := s.PruneEvents(ctx, base.Add(4*time.Minute), 3); err != nil || n != 1 || through != 4 {
		t.Fatalf("second prune: %d through %d, %v; want 1 through 4", n, through, err)
	}
	evs, err := s.Events(ctx, 0, 100)
	if err != nil || len(evs) != 6 || evs[0].Seq != 5 {
		t.Fatalf("after pruning: %d events, %v", len(evs), err)
	}
	// Everything is older than this, but the newest event stays, so that
	// the numbering continues from it after a restart.
	if n, through, err := s.PruneEvents(ctx, base.Add(time.Hour), 100); err != nil || n != 5 || through != 9 {
		t.Fatalf("pruning everything: %d through %d, %v; want 5 through 9", n, through, err)
	}
	s.Close()
	s = open(t, b, loc)
	defer s.Close()
	snap, err := s.Load(ctx)
	if err != nil || snap.LastEventSeq != 10 {
		t.Fatalf("after pruning everything: last seq %d, %v; want 10", snap.LastEventSeq, err)
	}
}

// testSecondOpen: a database in use is refused to a second store, or
// shared with it (Backend.Shared).
func testSecondOpen(t *testing.T, b Backend) {
	ctx := context.Background()
	loc := b.New(t)
	s := open(t, b, loc)
	if b.Shared {
		testSecondOpenShares(t, b, loc, s)
		return
	}
	s2, err := b.Open(ctx, loc)
	if err == nil {
		s2.Close()
		t.Fatal("a second coordinator opened a database in use")
	}
	if !strings.Contains(err.Error(), "in use by another meshcoord") {
		t.Errorf("second open: %v; want a message saying the database is in use", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing releases it at once.
	s = open(t, b, loc)
	if err := s.Apply(ctx, []store.Op{store.SetMeta("x", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// testSecondOpenShares: a second store on a shared database works beside
// the first and reads its writes.
func testSecondOpenShares(t *testing.T, b Backend, loc string, s store.Store) {
	ctx := context.Background()
	s2 := open(t, b, loc)
	defer s2.Close()
	if err := s.Apply(ctx, []store.Op{store.SetMeta("x", "from the first")}); err != nil {
		t.Fatal(err)
	}
	snap, err := s2.Load(ctx)
	if err != nil || snap.Meta["x"] != "from the first" {
		t.Fatalf("the second store reads meta %v, %v; want the first's write", snap.Meta, err)
	}
	if err := s2.Apply(ctx, []store.Op{store.SetMeta("x", "from the second")}); err != nil {
		t.Fatal(err)
	}
	if snap, err = s.Load(ctx); err != nil || snap.Meta["x"] != "from the second" {
		t.Fatalf("the first store reads meta %v, %v; want the second's write", snap.Meta, err)
	}
}
