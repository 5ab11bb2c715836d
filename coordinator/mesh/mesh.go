// Package mesh is the coordinator's state and its rules: the registered
// nodes and their indexes, the auth keys, the address pool, the names, the
// access policy document, and the counters (last node id, last event). It
// does no I/O, starts no goroutine, reads no clock and takes no lock: its
// owner serialises every call and says what time it is.
//
// State changes only by applying store ops. A command (Register, Connect,
// Logout, Rename, …) checks its request against the state, then makes the
// change as a list of ops, applying each as it goes, and returns the list:
// the Change that the owner writes to the store in the same order. Applying
// the same changes in the same order to the same state gives the same
// state, so another process can follow this one from its changes alone
// (Apply), and a Listener hears every effect in order, whoever made the
// change: the map streams, the GC timers and the presence table are fed
// from it, never by the commands themselves.
package mesh

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/ipam"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/policy"
)

// Meta names in the store.
const (
	MetaULA           = "ula_prefix"
	MetaLastNodeID    = "last_node_id"
	MetaPolicySource  = "policy_source"
	MetaPolicyVersion = "policy_version"
	MetaPolicyUpdated = "policy_updated"
)

// Config holds the parameters of the rules.
type Config struct {
	// BaseDomain makes FQDNs: name + "." + BaseDomain.
	BaseDomain string
	// EphemeralTimeout is how long an ephemeral node may stay offline when
	// its key does not say.
	EphemeralTimeout time.Duration
	// ReconnectGrace is how long a dropped node still counts as online,
	// and how long a node must be absent before a newcomer may replace it.
	ReconnectGrace time.Duration
}

// Listener hears the effects of every applied op, in order, as they
// happen: during a command or an Apply, so under the owner's lock. Its
// methods must be quick and must not call back into the Mesh's commands.
type Listener interface {
	// NodeAdded: a node was registered (or loaded).
	NodeAdded(n *Node)
	// NodeChanged: n changed; before is how it was.
	NodeChanged(n *Node, before *meshapi.Node)
	// NodeRemoved: n was deleted; it is no longer in the mesh.
	NodeRemoved(n *Node)
	// PolicyChanged: the policy document in force changed (p nil: none).
	PolicyChanged(p *Policy)
}

// Policy is the access policy document in force.
type Policy struct {
	Source  []byte         // nil: no policy
	Parsed  *policy.Policy // nil: no policy
	Version uint64         // 0: never set
	Updated time.Time
}

// Mesh is the state. Create it with Load.
type Mesh struct {
	cfg      Config
	listener Listener
	started  time.Time // no absence is counted from before this

	nodes    map[meshapi.NodeID]*Node
	byName   map[string]*Node
	bySecret map[authkey.Hash]*Node
	byPubKey map[meshapi.Key]*Node // a logged-out holder only if no other holds the key
	live     []*Node               // every node, for fast iteration
	keys     map[string]*Key
	pool     *ipam.Pool

	lastNodeID uint64
	eventSeq   uint64
	policy     Policy
	meta       map[string]string // stored values the rules do not interpret
}

// Restored tells the owner what a restart left to do.
type Restored struct {
	// Online are the nodes stored online: they were online (or in their
	// grace) when the coordinator went down. They count as online for one
	// grace from the start, and their GC clock starts at the start.
	Online []*Node
	// Expired are the ephemeral nodes whose deadline passed while the
	// coordinator was down: collect them now (Collect).
	Expired []*Node
	// First are ops a new database needs (its IPv6 prefix): store them
	// before anything else.
	First []store.Op
}

// Load builds the state from a snapshot of the store, as it is at now
// (the coordinator's start). heartbeat is the last time the coordinator
// was known alive: a node that was online then was seen then. l hears
// every node loaded (NodeAdded) and the policy (PolicyChanged).
func Load(cfg Config, snap *store.Snapshot, heartbeat, now time.Time, l Listener) (*Mesh, *Restored, error) {
	m := &Mesh{
		cfg: cfg, listener: l, started: now,
		nodes: map[meshapi.NodeID]*Node{}, byName: map[string]*Node{}, bySecret: map[authkey.Hash]*Node{},
		byPubKey: map[meshapi.Key]*Node{}, keys: map[string]*Key{}, meta: map[string]string{},
		eventSeq: snap.LastEventSeq,
	}
	rest := &Restored{}
	ula, err := netip.ParsePrefix(snap.Meta[MetaULA])
	if err != nil {
		if snap.Meta[MetaULA] != "" {
			return nil, nil, fmt.Errorf("stored ULA prefix %q: %v", snap.Meta[MetaULA], err)
		}
		// A new database: its IPv6 prefix is chosen once and kept forever.
		if ula, err = ipam.NewULA(); err != nil {
			return nil, nil, err
		}
		rest.First = append(rest.First, store.SetMeta(MetaULA, ula.String()))
	}
	if m.pool, err = ipam.New(ula); err != nil {
		return nil, nil, err
	}
	for name, v := range snap.Meta {
		if err := m.setMeta(name, v); err != nil {
			return nil, nil, err
		}
	}
	if err := m.loadPolicy(); err != nil {
		return nil, nil, err
	}
	for _, k := range snap.Keys {
		m.keys[k.ID] = &Key{KeyRecord: k}
	}
	for i := range snap.Nodes {
		r := &snap.Nodes[i]
		if r.Online && !r.LoggedOut {
			// Online when we went down: seen at the last heartbeat, and no
			// deadline until its grace from now has passed.
			if heartbeat.After(r.LastSeen) {
				r.LastSeen = heartbeat
			}
			r.GCDeadline = time.Time{}
		}
		n, err := m.add(r)
		if err != nil {
			return nil, nil, fmt.Errorf("stored node %d (%s): %v", r.ID, r.Name, err)
		}
		switch {
		case n.LoggedOut:
		case n.Online:
			rest.Online = append(rest.Online, n)
		case n.Ephemeral:
			if n.GCDeadline.IsZero() { // cannot happen with our writes; be safe
				n.GCDeadline = n.Created.Add(m.Timeout(n))
			}
			if !n.GCDeadline.After(now) {
				rest.Expired = append(rest.Expired, n)
			}
		}
	}
	l.PolicyChanged(&m.policy)
	return m, rest, nil
}

// loadPolicy parses the stored policy. A stored policy that no longer
// loads is an error: starting without it would open the mesh.
func (m *Mesh) loadPolicy() error {
	p := &m.policy
	p.Source = nil
	if src := m.meta[MetaPolicySource]; src != "" {
		parsed, err := policy.Load([]byte(src))
		if err != nil {
			return fmt.Errorf("the stored access policy no longer loads (fix it with \"meshcoord policy set\" on a coordinator that starts, or remove it): %w", err)
		}
		p.Source, p.Parsed = []byte(src), parsed
	} else {
		p.Parsed = nil
	}
	var err error
	if v := m.meta[MetaPolicyVersion]; v != "" {
		if p.Version, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("stored policy version %q: %v", v, err)
		}
	}
	p.Updated = time.Time{}
	if ns, err := strconv.ParseInt(m.meta[MetaPolicyUpdated], 10, 64); err == nil {
		p.Updated = time.Unix(0, ns)
	}
	return nil
}

// Config returns the rules' parameters.
func (m *Mesh) Config() Config { return m.cfg }

// Started returns when this state was loaded.
func (m *Mesh) Started() time.Time { return m.started }

// Node returns the node with this id, or nil.
func (m *Mesh) Node(id meshapi.NodeID) *Node { return m.nodes[id] }

// NodeByName returns the node with this name, or nil.
func (m *Mesh) NodeByName(name string) *Node { return m.byName[name] }

// NodeBySecret returns the node whose secret hashes to h, or nil.
func (m *Mesh) NodeBySecret(h authkey.Hash) *Node { return m.bySecret[h] }

// NodeByPublicKey returns the node holding k (one that is not logged out,
// if there is one), or nil.
func (m *Mesh) NodeByPublicKey(k meshapi.Key) *Node { return m.byPubKey[k] }

// Nodes returns every node, in no order. The slice is the mesh's own: do
// not keep or change it.
func (m *Mesh) Nodes() []*Node { return m.live }

// Key returns the auth key with this id, or nil.
func (m *Mesh) Key(id string) *Key { return m.keys[id] }

// Keys calls f for every auth key.
func (m *Mesh) Keys(f func(*Key)) {
	for _, k := range m.keys {
		f(k)
	}
}

// Prefixes returns the mesh's address ranges, IPv4 first.
func (m *Mesh) Prefixes() []netip.Prefix { return m.pool.Prefixes() }

// Policy returns the policy document in force.
func (m *Mesh) Policy() *Policy { return &m.policy }

// LastEvent returns the number of the newest event.
func (m *Mesh) LastEvent() uint64 { return m.eventSeq }

// Timeout returns n's inactivity timeout.
func (m *Mesh) Timeout(n *Node) time.Duration {
	if n.GCTimeout > 0 {
		return n.GCTimeout
	}
	return m.cfg.EphemeralTimeout
}

// FQDN returns name.BaseDomain.
func (m *Mesh) FQDN(name string) string { return name + "." + m.cfg.BaseDomain }
