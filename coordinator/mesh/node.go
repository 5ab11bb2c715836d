package mesh

import (
	"slices"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Node is a registered node. Its fields change only by applying a change
// (a PutNode of its record); outside the mesh, read it, never write it. Its
// lists (Endpoints, Tags) are replaced, never changed in place, so a copy
// of the struct is a consistent snapshot. A node keeps its identity (the
// pointer) from registration to deletion.
type Node struct {
	meshapi.Node
	// SecretHash finds the node from its secret.
	SecretHash authkey.Hash
	// GCTimeout is the node's own inactivity timeout (from its key); zero
	// means the mesh's default.
	GCTimeout time.Duration
	// Home is the replica that holds its map stream (empty on SQLite, and
	// while it holds none).
	Home string

	liveIdx int // position in Mesh.live
}

// View returns a copy of n as the admin API and the node's own map show it.
func (n *Node) View() meshapi.Node {
	v := n.Node
	v.Endpoints = slices.Clone(NonNil(n.Endpoints))
	v.Tags = slices.Clone(NonNil(n.Tags))
	return v
}

// Peer returns n as its peers see it.
func (n *Node) Peer() meshapi.Peer {
	p := n.Node.Peer()
	p.Endpoints = NonNil(p.Endpoints)
	p.Tags = NonNil(p.Tags)
	return p
}

// Record returns n as the store keeps it.
func (n *Node) Record() store.NodeRecord {
	return store.NodeRecord{
		ID: uint64(n.ID), Name: n.Name, Hostname: n.Hostname, IPv4: n.IPv4, IPv6: n.IPv6,
		PublicKey: n.PublicKey, Endpoints: n.Endpoints, Ephemeral: n.Ephemeral, Tags: n.Tags,
		Created: n.Created, LastSeen: n.LastSeen, KeyID: n.KeyID, SecretHash: n.SecretHash,
		LoggedOut: n.LoggedOut, Online: n.Online, GCTimeout: n.GCTimeout, GCDeadline: n.GCDeadline,
		Home: n.Home,
	}
}

// set makes n what r says (the fqdn derived with domain).
func (n *Node) set(r *store.NodeRecord, domain string) {
	n.Node = meshapi.Node{
		ID: meshapi.NodeID(r.ID), Name: r.Name, FQDN: r.Name + "." + domain, Hostname: r.Hostname,
		IPv4: r.IPv4, IPv6: r.IPv6, PublicKey: r.PublicKey, Endpoints: NonNil(r.Endpoints),
		Online: r.Online, LastSeen: r.LastSeen, Ephemeral: r.Ephemeral, Tags: NonNil(r.Tags),
		Created: r.Created, KeyID: r.KeyID, LoggedOut: r.LoggedOut, GCDeadline: r.GCDeadline,
	}
	n.SecretHash, n.GCTimeout, n.Home = r.SecretHash, r.GCTimeout, r.Home
}

// PeerChanged reports whether a peer's view of a node differs between a
// and b in more than its presence (online, last seen).
func PeerChanged(a, b *meshapi.Node) bool {
	return a.Name != b.Name || a.FQDN != b.FQDN || a.IPv4 != b.IPv4 || a.IPv6 != b.IPv6 ||
		a.PublicKey != b.PublicKey || !slices.Equal(a.Endpoints, b.Endpoints) || !slices.Equal(a.Tags, b.Tags)
}

// PresenceChanged reports whether a node's presence differs between a and b.
func PresenceChanged(a, b *meshapi.Node) bool {
	return a.Online != b.Online || !a.LastSeen.Equal(b.LastSeen)
}

// Key is an auth key.
type Key struct {
	store.KeyRecord
}

// State says whether k can register a node at now, or why not.
func (k *Key) State(now time.Time) meshapi.KeyState {
	switch {
	case !k.Revoked.IsZero():
		return meshapi.KeyRevoked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return meshapi.KeyExpired
	case !k.Reusable && k.Uses > 0:
		return meshapi.KeyUsed
	}
	return meshapi.KeyValid
}

// API returns k as the admin API shows it.
func (k *Key) API(now time.Time) meshapi.AuthKey {
	return meshapi.AuthKey{
		ID: k.ID, Description: k.Description, Ephemeral: k.Ephemeral, Reusable: k.Reusable,
		Tags: NonNil(k.Tags), Created: k.Created, Expires: k.Expires,
		EphemeralTimeout: meshapi.Duration(k.EphemeralTimeout), Uses: k.Uses, Revoked: k.Revoked,
		State: k.State(now),
	}
}

// NonNil makes empty lists travel as [] rather than null.
func NonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
