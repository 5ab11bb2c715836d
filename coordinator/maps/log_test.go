package maps_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/maps"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

// meshWithMaps is a mesh whose listener is a map log, as in the server.
func meshWithMaps(t *testing.T) (*mesh.Mesh, *maps.Log, authkey.Key) {
	t.Helper()
	l := maps.New(maps.Config{Epoch: "e1", BaseVersion: 100, Size: 64, Shards: 1, Domain: "mesh.test", Keepalive: time.Second})
	snap := &store.Snapshot{Meta: map[string]string{mesh.MetaULA: "fd01:2:3::/48"}}
	m, _, err := mesh.Load(mesh.Config{BaseDomain: "mesh.test", EphemeralTimeout: time.Minute, ReconnectGrace: time.Second}, snap, time.Time{}, t0, l)
	if err != nil {
		t.Fatal(err)
	}
	l.SetPrefixes(m.Prefixes())
	l.Live()
	k, err := authkey.New()
	if err != nil {
		t.Fatal(err)
	}
	m.CreateKey(store.KeyRecord{ID: k.ID, Hash: k.Hash(), Reusable: true, Created: t0}, t0)
	return m, l, k
}

func register(t *testing.T, m *mesh.Mesh, k authkey.Key, host string, b byte) *mesh.Node {
	t.Helper()
	_, h := authkey.NewNodeSecret()
	n, _, _, e := m.Register(&mesh.Registration{Key: k, Hostname: host, PublicKey: meshapi.Key{b}, SecretHash: h}, t0)
	if e != nil {
		t.Fatal(e)
	}
	return n
}

// lines reads the ring after cursor as node self would: the line for its
// peers, or its own.
func lines(t *testing.T, l *maps.Log, after uint64, self *mesh.Node) []meshapi.MapMessage {
	t.Helper()
	entries, _, ok := l.Ring().Read(after, make([]deltalog.Entry, 0, 64), 0)
	if !ok {
		t.Fatal("the ring does not hold the cursor")
	}
	var out []meshapi.MapMessage
	for _, e := range entries {
		data := e.Data
		if e.Subject == uint64(self.ID) {
			data = e.Self
		}
		if data == nil {
			continue
		}
		var msg meshapi.MapMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

func types(ms []meshapi.MapMessage) []meshapi.MessageType {
	var out []meshapi.MessageType
	for _, m := range ms {
		out = append(out, m.Type)
	}
	return out
}

// TestLinesFollowFromTheChanges: what changed decides the line: a new node
// an upsert, endpoints an upsert (and a self line for the node), online a
// presence line, a logout a remove, and the later deletion of a logged-out
// node nothing at all.
func TestLinesFollowFromTheChanges(t *testing.T) {
	m, l, k := meshWithMaps(t)
	a := register(t, m, k, "a", 1)
	start := l.Ring().Last()
	b := register(t, m, k, "b", 2)
	m.Connect(b, "", t0)
	m.SetEndpoints(b, []netip.AddrPort{netip.MustParseAddrPort("198.18.0.2:41641")}, t0)
	m.Logout(b, meshapi.ReasonLogout, "", t0)
	m.Delete(b, meshapi.ReasonAdmin, "", t0)
	want := []meshapi.MessageType{meshapi.MsgUpsert, meshapi.MsgPresence, meshapi.MsgUpsert, meshapi.MsgRemove}
	if got := types(lines(t, l, start, a)); !slices.Equal(got, want) {
		t.Fatalf("a saw %v, want %v", got, want)
	}
	// b itself: only a self line for its endpoints (its stream ends with
	// its logout).
	if got := types(lines(t, l, start, b)); !slices.Equal(got, []meshapi.MessageType{meshapi.MsgSelf}) {
		t.Fatalf("b saw %v", got)
	}
}

// TestSnapshotHoldsTheLivePeers: a full map holds every other node that is
// not logged out, at the current version, and parses as one line.
func TestSnapshotHoldsTheLivePeers(t *testing.T) {
	m, l, k := meshWithMaps(t)
	a := register(t, m, k, "a", 1)
	b := register(t, m, k, "b", 2)
	c := register(t, m, k, "c", 3)
	m.Logout(c, meshapi.ReasonLogout, "", t0)
	full, _, ok := l.Snapshot(a.ID)
	if !ok || full.Version != l.Ring().Last() {
		t.Fatalf("snapshot %v at %d, log at %d", ok, full.Version, l.Ring().Last())
	}
	parts, err := l.FullLine(&full)
	if err != nil {
		t.Fatal(err)
	}
	var line []byte
	for _, p := range parts {
		line = append(line, p...)
	}
	var msg meshapi.MapMessage
	if err := json.Unmarshal(line, &msg); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if msg.Self.ID != a.ID || len(msg.Peers) != 1 || msg.Peers[0].ID != b.ID || msg.Epoch != "e1" || len(msg.Prefixes) != 2 {
		t.Fatalf("full map %s", line)
	}
	if _, _, ok := l.Snapshot(c.ID); ok {
		t.Fatal("a logged-out node got a full map")
	}
}
