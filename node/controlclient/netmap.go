package controlclient

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// NetMap is the node's view of the mesh as the map stream built it. The
// zero value holds no map; the first full message fills it.
type NetMap struct {
	// Epoch and Version identify the last message applied; a resume asks
	// for since=Version.
	Epoch   string
	Version uint64

	Domain   string
	Prefixes []netip.Prefix
	Self     meshapi.Node
	Peers    map[meshapi.NodeID]meshapi.Peer

	// Policy is the access policy as this node enforces it; nil: none.
	Policy *meshapi.NodePolicy

	// KeepaliveInterval is how often the coordinator promised a line.
	KeepaliveInterval time.Duration

	// resync is set when a message could not be applied: the next stream
	// asks for a full map instead of resuming.
	resync bool
}

// Change is what one message did to a NetMap, in the terms a data plane
// needs: which peers to add or replace and which to drop. A full map that
// replaces an older one is reported as the difference between the two, so
// a resync after a reconnect never reloads unchanged peers.
type Change struct {
	// Full is set when the message was a full map.
	Full bool
	// SelfChanged is set when Self, Domain or Prefixes differ from before.
	SelfChanged bool
	// Upserted are peers that are new or whose data changed.
	Upserted []meshapi.Peer
	// Removed are peers that are gone.
	Removed []meshapi.NodeID
	// Presence are online/offline patches of peers that exist.
	Presence []meshapi.Presence
	// PolicyChanged is set when Policy differs from before.
	PolicyChanged bool
}

// Empty reports whether the change did nothing.
func (c Change) Empty() bool {
	return !c.SelfChanged && !c.PolicyChanged && len(c.Upserted) == 0 && len(c.Removed) == 0 && len(c.Presence) == 0
}

// HasMap reports whether a full map has been applied.
func (m *NetMap) HasMap() bool { return m.Peers != nil }

// Apply applies one stream message. A delta that is not newer than the map
// is skipped (it was already applied before a resume); a delta before any
// full map, or a message of unknown type that claims to change something, is
// an error: the caller should reconnect asking for a full map.
func (m *NetMap) Apply(msg *meshapi.MapMessage) (Change, error) {
	if msg.Type == meshapi.MsgFull {
		return m.applyFull(msg)
	}
	if msg.Type == meshapi.MsgKeepalive {
		// A keepalive's version is the last one the stream delivered
		// (versions about this node itself are skipped): adopt it, so a
		// resume asks only for what came after.
		if m.HasMap() && (msg.Epoch == "" || msg.Epoch == m.Epoch) && msg.Version > m.Version {
			m.Version = msg.Version
		}
		return Change{}, nil
	}
	if !m.HasMap() {
		return Change{}, fmt.Errorf("map stream: %q message before the full map", msg.Type)
	}
	if msg.Epoch != "" && msg.Epoch != m.Epoch {
		return Change{}, fmt.Errorf("map stream: %q message from coordinator epoch %q, map is from %q", msg.Type, msg.Epoch, m.Epoch)
	}
	if msg.Version <= m.Version {
		return Change{}, nil // already applied before a resume
	}
	var c Change
	switch msg.Type {
	case meshapi.MsgUpsert:
		m.upsert(msg.Peers, &c)
	case meshapi.MsgRemove:
		m.remove(msg.Removed, &c)
	case meshapi.MsgPolicy:
		m.remove(msg.Removed, &c)
		m.upsert(msg.Peers, &c)
		c.PolicyChanged = !samePolicy(m.Policy, msg.Policy)
		m.Policy = msg.Policy
	case meshapi.MsgPresence:
		for _, pr := range msg.Presence {
			p, ok := m.Peers[pr.ID]
			if !ok {
				continue
			}
			p.Online, p.LastSeen = pr.Online, pr.LastSeen
			m.Peers[pr.ID] = p
			c.Presence = append(c.Presence, pr)
		}
	case meshapi.MsgSelf:
		if msg.Self == nil {
			return Change{}, fmt.Errorf("map stream: self message without self")
		}
		c.SelfChanged = !sameNode(m.Self, *msg.Self)
		m.Self = *msg.Self
	default:
		// A newer coordinator may send message kinds we do not know. Skipping
		// one would leave the map silently wrong, so resync instead.
		return Change{}, fmt.Errorf("map stream: unknown message type %q", msg.Type)
	}
	m.Version = msg.Version
	return c, nil
}

func (m *NetMap) upsert(peers []meshapi.Peer, c *Change) {
	for _, p := range peers {
		if p.ID == m.Self.ID {
			continue // the coordinator never lists us as our own peer; be safe
		}
		if old, ok := m.Peers[p.ID]; ok && samePeer(old, p) {
			continue
		}
		m.Peers[p.ID] = p
		c.Upserted = append(c.Upserted, p)
	}
}

func (m *NetMap) remove(ids []meshapi.NodeID, c *Change) {
	for _, id := range ids {
		if _, ok := m.Peers[id]; ok {
			delete(m.Peers, id)
			c.Removed = append(c.Removed, id)
		}
	}
}

func samePolicy(a, b *meshapi.NodePolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Version == b.Version && slices.EqualFunc(a.Rules, b.Rules, func(x, y meshapi.PolicyRule) bool {
		return slices.Equal(x.Src, y.Src) && slices.Equal(x.IP, y.IP)
	})
}

func (m *NetMap) applyFull(msg *meshapi.MapMessage) (Change, error) {
	if msg.Self == nil {
		return Change{}, fmt.Errorf("map stream: full map without self")
	}
	c := Change{Full: true}
	c.SelfChanged = !m.HasMap() || !sameNode(m.Self, *msg.Self) || m.Domain != msg.Domain || !slices.Equal(m.Prefixes, msg.Prefixes)
	next := make(map[meshapi.NodeID]meshapi.Peer, len(msg.Peers))
	for _, p := range msg.Peers {
		if p.ID == msg.Self.ID {
			continue
		}
		next[p.ID] = p
		if old, ok := m.Peers[p.ID]; !ok || !samePeer(old, p) {
			c.Upserted = append(c.Upserted, p)
		}
	}
	for id := range m.Peers {
		if _, ok := next[id]; !ok {
			c.Removed = append(c.Removed, id)
		}
	}
	slices.Sort(c.Removed)
	c.PolicyChanged = !m.HasMap() || !samePolicy(m.Policy, msg.Policy)
	m.Policy = msg.Policy
	m.Epoch, m.Version, m.resync = msg.Epoch, msg.Version, false
	m.Domain, m.Prefixes, m.Self, m.Peers = msg.Domain, msg.Prefixes, *msg.Self, next
	if msg.KeepaliveInterval > 0 {
		m.KeepaliveInterval = time.Duration(msg.KeepaliveInterval)
	}
	return c, nil
}

func samePeer(a, b meshapi.Peer) bool {
	return a.ID == b.ID && a.Name == b.Name && a.FQDN == b.FQDN && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		a.PublicKey == b.PublicKey && slices.Equal(a.Endpoints, b.Endpoints) && a.Online == b.Online &&
		a.LastSeen.Equal(b.LastSeen) && slices.Equal(a.Tags, b.Tags)
}

func sameNode(a, b meshapi.Node) bool {
	return samePeer(a.Peer(), b.Peer()) && a.Hostname == b.Hostname && a.Ephemeral == b.Ephemeral &&
		a.LoggedOut == b.LoggedOut && a.KeyID == b.KeyID
}
