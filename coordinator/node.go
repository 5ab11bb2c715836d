package coordinator

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// node is a registered node in memory. Every field is guarded by Server.mu.
type node struct {
	meshapi.Node

	secretHash authkey.Hash
	// gcTimeout is the node's own inactivity timeout (from its key); zero
	// means the server default.
	gcTimeout time.Duration
	// clockFrom is when the node's inactivity clock started: registration,
	// the moment its stream dropped, or the coordinator's start for a node
	// that was online when the coordinator went down.
	clockFrom time.Time

	// liveIdx is n's position in Server.live.
	liveIdx int

	// stream is the node's live map stream; nil when none is held.
	stream *stream
	// graceGen and gcGen invalidate timers that fired after their cause went
	// away (a reconnect, a deletion).
	graceGen, gcGen uint64
	graceTimer      clock.Timer
	gcTimer         clock.Timer

	// class is the node's tag class (policy.go); 0 until first needed.
	class classID

	// peerJSON caches the encoded meshapi.Peer for full maps, followed by a
	// comma (the separator in a full map's peer list, so a full map can be
	// written straight from these slices); nil when the node changed since.
	peerJSON []byte
}

// timeout is the node's effective inactivity timeout.
func (s *Server) timeout(n *node) time.Duration {
	if n.gcTimeout > 0 {
		return n.gcTimeout
	}
	return s.cfg.EphemeralTimeout
}

// view returns a copy of n as the admin API and the node's own map show it.
func (n *node) view() meshapi.Node {
	v := n.Node
	v.Endpoints = slices.Clone(nonNil(n.Endpoints))
	v.Tags = slices.Clone(nonNil(n.Tags))
	return v
}

// encodedPeer returns n as a peer, encoded and followed by a comma, from
// the cache when it is fresh. The slice is never modified afterwards.
func (n *node) encodedPeer() []byte {
	if n.peerJSON == nil {
		b, err := json.Marshal(n.peer())
		if err != nil {
			panic("coordinator: encoding a peer: " + err.Error()) // our own type: cannot fail
		}
		n.peerJSON = append(b, ',')
	}
	return n.peerJSON
}

func (n *node) peer() meshapi.Peer {
	p := n.Node.Peer()
	p.Endpoints = nonNil(p.Endpoints)
	p.Tags = nonNil(p.Tags)
	return p
}

// changed drops cached encodings after a field visible to peers changed.
func (n *node) changed() { n.peerJSON = nil }

func (n *node) record() store.NodeRecord {
	return store.NodeRecord{
		ID: uint64(n.ID), Name: n.Name, Hostname: n.Hostname, IPv4: n.IPv4, IPv6: n.IPv6,
		PublicKey: n.PublicKey, Endpoints: n.Endpoints, Ephemeral: n.Ephemeral, Tags: n.Tags,
		Created: n.Created, LastSeen: n.LastSeen, KeyID: n.KeyID, SecretHash: n.secretHash,
		LoggedOut: n.LoggedOut, Online: n.Online, GCTimeout: n.gcTimeout, GCDeadline: n.GCDeadline,
	}
}

// nonNil makes empty lists travel as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
