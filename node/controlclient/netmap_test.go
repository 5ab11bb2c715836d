package controlclient

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

func peer(id meshapi.NodeID, name string) meshapi.Peer {
	return meshapi.Peer{ID: id, Name: name, IPv4: netip.AddrFrom4([4]byte{100, 64, 0, byte(id)})}
}

func full(version uint64, peers ...meshapi.Peer) *meshapi.MapMessage {
	return &meshapi.MapMessage{
		Type: meshapi.MsgFull, Version: version, Epoch: "e1", Domain: "mesh.internal",
		Self:              &meshapi.Node{ID: 1, Name: "self", IPv4: netip.MustParseAddr("100.64.0.1")},
		Peers:             peers,
		KeepaliveInterval: meshapi.Duration(2 * time.Second),
	}
}

func TestApplyDeltaBeforeFullIsAnError(t *testing.T) {
	var m NetMap
	if _, err := m.Apply(&meshapi.MapMessage{Type: meshapi.MsgUpsert, Version: 1, Peers: []meshapi.Peer{peer(2, "a")}}); err == nil {
		t.Fatal("upsert before the full map was applied")
	}
}

func TestApplyFullThenDeltas(t *testing.T) {
	var m NetMap
	c, err := m.Apply(full(5, peer(2, "a"), peer(3, "b")))
	if err != nil || !c.Full || !c.SelfChanged || len(c.Upserted) != 2 || len(c.Removed) != 0 {
		t.Fatalf("first full: %+v, %v", c, err)
	}
	if m.KeepaliveInterval != 2*time.Second || m.Version != 5 || !m.HasMap() {
		t.Fatalf("map after full: %+v", m)
	}

	c, _ = m.Apply(&meshapi.MapMessage{Type: meshapi.MsgUpsert, Version: 6, Peers: []meshapi.Peer{peer(4, "c")}})
	if len(c.Upserted) != 1 || c.Upserted[0].ID != 4 || len(m.Peers) != 3 {
		t.Fatalf("upsert: %+v, peers %d", c, len(m.Peers))
	}
	c, _ = m.Apply(&meshapi.MapMessage{Type: meshapi.MsgRemove, Version: 8, Removed: []meshapi.NodeID{2, 99}})
	if !slices.Equal(c.Removed, []meshapi.NodeID{2}) || len(m.Peers) != 2 {
		t.Fatalf("remove: %+v, peers %d", c, len(m.Peers))
	}
	now := time.Now().UTC()
	c, _ = m.Apply(&meshapi.MapMessage{Type: meshapi.MsgPresence, Version: 9, Presence: []meshapi.Presence{{ID: 3, Online: true, LastSeen: now}, {ID: 77, Online: true}}})
	if len(c.Presence) != 1 || !m.Peers[3].Online || !m.Peers[3].LastSeen.Equal(now) {
		t.Fatalf("presence: %+v, peer 3 %+v", c, m.Peers[3])
	}
	c, _ = m.Apply(&meshapi.MapMessage{Type: meshapi.MsgSelf, Version: 10, Self: &meshapi.Node{ID: 1, Name: "renamed"}})
	if !c.SelfChanged || m.Self.Name != "renamed" || m.Version != 10 {
		t.Fatalf("self: %+v, self %+v", c, m.Self)
	}
	c, _ = m.Apply(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: 10})
	if !c.Empty() || m.Version != 10 {
		t.Fatalf("keepalive changed something: %+v", c)
	}
}

func TestApplySkipsDeltasAlreadyApplied(t *testing.T) {
	var m NetMap
	m.Apply(full(5, peer(2, "a")))
	c, err := m.Apply(&meshapi.MapMessage{Type: meshapi.MsgRemove, Version: 5, Removed: []meshapi.NodeID{2}})
	if err != nil || !c.Empty() || len(m.Peers) != 1 {
		t.Fatalf("replayed delta applied: %+v, %v", c, err)
	}
}

func TestApplyUnchangedUpsertIsEmpty(t *testing.T) {
	var m NetMap
	m.Apply(full(1, peer(2, "a")))
	c, _ := m.Apply(&meshapi.MapMessage{Type: meshapi.MsgUpsert, Version: 2, Peers: []meshapi.Peer{peer(2, "a")}})
	if !c.Empty() {
		t.Fatalf("identical upsert reported a change: %+v", c)
	}
}

// A resync (new full map after a reconnect) reports only the difference, so
// the data plane is never reloaded wholesale.
func TestApplySecondFullIsADiff(t *testing.T) {
	var m NetMap
	m.Apply(full(5, peer(2, "a"), peer(3, "b"), peer(4, "c")))
	changed := peer(3, "b")
	changed.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:4000")}
	c, err := m.Apply(full(1, peer(2, "a"), changed, peer(5, "d")))
	if err != nil {
		t.Fatal(err)
	}
	var up []meshapi.NodeID
	for _, p := range c.Upserted {
		up = append(up, p.ID)
	}
	slices.Sort(up)
	if !slices.Equal(up, []meshapi.NodeID{3, 5}) || !slices.Equal(c.Removed, []meshapi.NodeID{4}) || c.SelfChanged {
		t.Fatalf("second full: upserted %v removed %v self %v", up, c.Removed, c.SelfChanged)
	}
	if m.Version != 1 {
		t.Fatalf("a full map from a new epoch must reset the version; got %d", m.Version)
	}
}

func TestApplyIgnoresSelfInPeers(t *testing.T) {
	var m NetMap
	m.Apply(full(1, peer(1, "self"), peer(2, "a")))
	if _, ok := m.Peers[1]; ok {
		t.Fatal("self listed as its own peer")
	}
}

func TestApplyUnknownTypeForcesResync(t *testing.T) {
	var m NetMap
	m.Apply(full(1))
	if _, err := m.Apply(&meshapi.MapMessage{Type: "teleport", Version: 2}); err == nil {
		t.Fatal("unknown message type accepted")
	}
	if _, err := m.Apply(&meshapi.MapMessage{Type: meshapi.MsgSelf, Version: 3}); err == nil {
		t.Fatal("self message without self accepted")
	}
	if _, err := m.Apply(&meshapi.MapMessage{Type: meshapi.MsgFull, Version: 3}); err == nil {
		t.Fatal("full map without self accepted")
	}
}

func TestKeepaliveAdvancesVersionWithinEpoch(t *testing.T) {
	var m NetMap
	m.Apply(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: 50, Epoch: "e1"})
	if m.Version != 0 || m.HasMap() {
		t.Fatalf("keepalive before the full map changed the map: %+v", m)
	}
	m.Apply(full(5, peer(2, "a")))
	m.Apply(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: 9, Epoch: "e1"})
	if m.Version != 9 {
		t.Fatalf("version %d after a keepalive at 9, want 9", m.Version)
	}
	m.Apply(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: 7, Epoch: "e1"})
	m.Apply(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: 99, Epoch: "other"})
	if m.Version != 9 {
		t.Fatalf("version %d: an older keepalive or one from another epoch moved it", m.Version)
	}
}
