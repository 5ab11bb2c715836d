package store

import (
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

func open(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleNode(id uint64, name, v4 string) NodeRecord {
	ip4 := netip.MustParseAddr(v4)
	b := ip4.As4()
	ip6 := netip.AddrFrom16([16]byte{0xfd, 1, 2, 3, 4, 5, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
	now := time.Unix(1700000000, 123456789)
	return NodeRecord{
		ID: id, Name: name, Hostname: strings.ToUpper(name), IPv4: ip4, IPv6: ip6,
		PublicKey: [32]byte{byte(id)}, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:51820")},
		Ephemeral: true, Tags: []string{"tag:ci"}, Created: now, LastSeen: now.Add(time.Second),
		KeyID: "0123456789abcdef", SecretHash: [32]byte{byte(id), 9}, Online: true,
		GCTimeout: 2 * time.Minute, GCDeadline: now.Add(time.Hour),
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "coord.db")
	s := open(t, path)
	key := KeyRecord{ID: "0123456789abcdef", Hash: [32]byte{1, 2, 3}, Description: "ci", Ephemeral: true,
		Tags: []string{"tag:a", "tag:b"}, Created: time.Unix(1700000000, 0), Expires: time.Unix(1700086400, 0),
		EphemeralTimeout: 90 * time.Second, Uses: 3}
	n1, n2 := sampleNode(1, "web", "100.64.0.1"), sampleNode(2, "db", "100.64.0.2")
	n2.Tags, n2.Endpoints = nil, nil
	ev := meshapi.Event{Seq: 1, Time: time.Unix(1700000001, 5), Type: meshapi.EventDeleted, NodeID: 7, Name: "old", Reason: meshapi.ReasonGC}
	err := s.Apply(context.Background(), []Op{
		PutKey(key), PutNode(n1), PutNode(n2), DeleteNode(2), PutNode(n2), AddEvent(ev), SetMeta("ula", "fd01::/48"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if v, err := s.SchemaVersion(context.Background()); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	snap, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Meta["ula"] != "fd01::/48" || snap.LastEventSeq != 1 {
		t.Fatalf("meta %v, last seq %d", snap.Meta, snap.LastEventSeq)
	}
	if len(snap.Keys) != 1 || !reflect.DeepEqual(snap.Keys[0], key) {
		t.Fatalf("keys = %+v\nwant %+v", snap.Keys, key)
	}
	n2.Tags, n2.Endpoints = []string{}, []netip.AddrPort{} // stored as [] and loaded as empty, never null
	if len(snap.Nodes) != 2 || !reflect.DeepEqual(snap.Nodes[0], n1) || !reflect.DeepEqual(snap.Nodes[1], n2) {
		t.Fatalf("nodes = %+v\nwant %+v and %+v", snap.Nodes, n1, n2)
	}
	evs, err := s.Events(context.Background(), 0, 10)
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(ev.Time) || evs[0].Reason != ev.Reason || evs[0].NodeID != 7 {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	if evs, _ := s.Events(context.Background(), 1, 10); len(evs) != 0 {
		t.Fatalf("events after 1 = %v", evs)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "coord.db"))
	defer s.Close()
	ctx := context.Background()
	if err := s.Apply(ctx, []Op{PutNode(sampleNode(1, "web", "100.64.0.1"))}); err != nil {
		t.Fatal(err)
	}
	// Second node steals the name: the whole batch must fail, the first op too.
	err := s.Apply(ctx, []Op{SetMeta("x", "1"), PutNode(sampleNode(2, "web", "100.64.0.2"))})
	if err == nil {
		t.Fatal("duplicate name accepted")
	}
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Meta["x"]; ok || len(snap.Nodes) != 1 {
		t.Fatalf("failed batch left traces: meta %v, %d nodes", snap.Meta, len(snap.Nodes))
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coord.db")
	s := open(t, path)
	_, err := OpenSQLite(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "in use by another meshcoord") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	open(t, path).Close()
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b.db"} {
		if _, err := OpenSQLite(context.Background(), p); err == nil {
			t.Errorf("OpenSQLite(%q) accepted", p)
		}
	}
}

func TestPruneEventsKeepsTheNewest(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coord.db")
	s := open(t, path)
	base := time.Unix(1700000000, 0)
	var ops []Op
	for i := range 10 {
		ops = append(ops, AddEvent(meshapi.Event{Seq: uint64(i + 1), Time: base.Add(time.Duration(i) * time.Minute), Type: meshapi.EventOnline, NodeID: 1, Name: "a"}))
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
		t.Fatalf("after pruning: %d events from seq %d, %v", len(evs), evs[0].Seq, err)
	}
	// Everything is older than this, but the newest event stays, so that
	// the numbering continues from it after a restart.
	if _, _, err := s.PruneEvents(ctx, base.Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	snap, err := s.Load(ctx)
	if err != nil || snap.LastEventSeq != 10 {
		t.Fatalf("after pruning everything: last seq %d, %v; want 10", snap.LastEventSeq, err)
	}
}
