// Package maps is the change log that feeds the map streams: every change
// to the mesh that a node's map shows becomes one line, encoded once, with
// the next version, in a ring (deltalog) that every stream copies from at
// its own cursor; a node that connects (or falls behind) gets a full map
// instead, built from this package's own table of peers.
//
// It is fed by the mesh's Listener callbacks (NodeAdded, NodeChanged,
// NodeRemoved, PolicyChanged), so the lines follow from the state changes
// themselves, whoever made them: the same changes applied in the same order
// give the same lines. Each line's kind follows from what changed: a new
// node is an upsert; a change of what peers see (name, endpoints, …) an
// upsert, and a "self" line for the node itself; a change of online or
// last seen a presence line; a deletion or a logout a remove; a policy
// change one line per tag class with the peers it gains and loses.
//
// The access policy trims maps: a node's map holds the peers its tag class
// sees (see policy.go), full maps and deltas alike.
package maps

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// Config describes the lines.
type Config struct {
	// Epoch names this run; versions are comparable only within it.
	Epoch string
	// BaseVersion is the version before the first line.
	BaseVersion uint64
	// Size is how many recent lines the ring holds.
	Size int
	// Shards is how many wake groups the streams are split into.
	Shards int
	// Domain, Prefixes and Keepalive go in every full map. (Prefixes may
	// also be set with SetPrefixes, before Live.)
	Domain    string
	Prefixes  []netip.Prefix
	Keepalive time.Duration
	// Deltas counts the lines published (nil: not counted).
	Deltas prometheus.Counter
}

// Log is the map change log. Its Listener methods run under the mesh's
// owner's lock; everything else may be called from any goroutine.
type Log struct {
	cfg    Config
	deltas *deltalog.Log

	mu      sync.Mutex
	quiet   bool // loading: the table is filled, nothing is published
	peers   map[meshapi.NodeID]*peer
	order   []*peer // every peer, for full maps (faster than the map)
	classes *classTable
	vis     *visibility // the policy in force
	history []visAt     // the visibility from each version on, as far back as the ring

	// Replicas only: the lines of a change being written take their
	// versions at once but are appended only when it is committed
	// (Release), or dropped if it is not (Reset). Meanwhile the table is
	// ahead of the ring, and full maps wait (held).
	holding bool
	pending []deltalog.Entry
	held    *sync.Cond // on mu: broadcast when holding ends
}

// peer is one node as the maps see it: a copy, so full maps are built
// without the mesh's lock. (A shallow copy: the mesh never changes the
// contents of a node's lists, it replaces them.)
type peer struct {
	id    meshapi.NodeID
	view  meshapi.Node // as the node itself sees it
	class classID
	idx   int // position in Log.order
	// enc is the encoded meshapi.Peer followed by a comma (the separator
	// in a full map's peer list), nil until needed after a change.
	enc []byte
}

// New returns an empty log, quiet until Live: nodes and the policy added
// meanwhile (loading the stored state) fill the table without lines.
func New(cfg Config) *Log {
	c := newClassTable()
	vis := newVisibility(nil, 0, c)
	l := &Log{
		cfg: cfg, deltas: deltalog.New(cfg.Size, cfg.BaseVersion, cfg.Shards), quiet: true,
		peers: map[meshapi.NodeID]*peer{}, classes: c, vis: vis, history: []visAt{{0, vis}},
	}
	l.held = sync.NewCond(&l.mu)
	return l
}

// Hold starts a change whose lines must wait for its commit (a replica's
// write, or a change of another replica being applied): they take their
// versions, and are appended by Release.
func (l *Log) Hold() {
	l.mu.Lock()
	l.holding = true
	l.mu.Unlock()
}

// Release ends the held change: it was committed as versions first to
// first+versions-1. Its lines are appended, then empty entries up to the
// last of its versions, so that the ring's versions are the change log's
// on every replica. It fails (appending nothing) when the lines do not fit
// those versions: the memory is not the log's, reload it.
func (l *Log) Release(first, versions uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.endHoldLocked()
	if first != l.deltas.Next() || uint64(len(l.pending)) > versions {
		return fmt.Errorf("maps: a change of %d lines committed as versions %d+%d, after version %d",
			len(l.pending), first, versions, l.deltas.Last())
	}
	for _, e := range l.pending {
		l.deltas.Append(e)
	}
	for v := first + uint64(len(l.pending)); v < first+versions; v++ {
		l.deltas.Append(deltalog.Entry{Version: v}) // no line: every reader skips it
	}
	if l.cfg.Deltas != nil {
		l.cfg.Deltas.Add(float64(len(l.pending)))
	}
	return nil
}

func (l *Log) endHoldLocked() {
	clear(l.pending)
	l.pending = l.pending[:0]
	l.holding = false
	l.held.Broadcast()
}

// Held returns how many lines the held change has made so far: the map
// versions it takes.
func (l *Log) Held() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.pending))
}

// Abort ends the held change without appending its lines: it was not
// committed (the state that made them is reloaded), or made none.
func (l *Log) Abort() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endHoldLocked()
}

// Reset empties the table (dropping a held change) for a reload of the
// state: what is added until LiveAt fills the table without lines, and
// full maps wait for LiveAt.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endHoldLocked()
	l.holding = true
	l.quiet = true
	l.peers = map[meshapi.NodeID]*peer{}
	l.order = nil
	l.vis = newVisibility(nil, 0, l.classes)
	l.history = []visAt{{0, l.vis}}
}

// LiveAt ends a reload whose state is the change log's at version v: a
// stream behind v gets a full map (the changes in between were not seen
// one by one), and the ring continues from v.
func (l *Log) LiveAt(v uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.quiet = false
	defer l.endHoldLocked()
	last := l.deltas.Last()
	switch {
	case v < last:
		return fmt.Errorf("maps: reloaded at version %d, before the ring's %d", v, last)
	case v == last:
		return nil
	}
	l.deltas.Append(deltalog.Entry{Version: last + 1, Payload: resync{}})
	for u := last + 2; u <= v; u++ {
		l.deltas.Append(deltalog.Entry{Version: u})
	}
	return nil
}

// resync is the payload of the entry that sends every stream a full map.
type resync struct{}

// SetPrefixes sets the mesh's address ranges for full maps (known once the
// state is loaded). Call it before Live.
func (l *Log) SetPrefixes(p []netip.Prefix) { l.cfg.Prefixes = p }

// Live ends loading: changes from now on are published.
func (l *Log) Live() {
	l.mu.Lock()
	l.quiet = false
	l.mu.Unlock()
}

// Ring returns the ring of lines that streams read.
func (l *Log) Ring() *deltalog.Log { return l.deltas }

// Epoch returns the epoch of the lines.
func (l *Log) Epoch() string { return l.cfg.Epoch }

// SetWakeInterval paces the streams' wake-ups (see deltalog).
func (l *Log) SetWakeInterval(d time.Duration) { l.deltas.SetWakeInterval(d) }

// NodeAdded implements mesh.Listener: peers get an upsert.
func (l *Log) NodeAdded(n *mesh.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &peer{id: n.ID, view: n.Node, class: l.classes.internLocked(n.Tags), idx: len(l.order)}
	l.peers[n.ID] = p
	l.order = append(l.order, p)
	if !n.LoggedOut {
		l.publishLocked(p, upsert(p), nil)
	}
}

// NodeChanged implements mesh.Listener.
func (l *Log) NodeChanged(n *mesh.Node, before *meshapi.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[n.ID]
	p.view, p.enc = n.Node, nil
	switch {
	case n.LoggedOut:
		if !before.LoggedOut { // it leaves every map
			l.publishLocked(p, meshapi.MapMessage{Type: meshapi.MsgRemove, Removed: []meshapi.NodeID{n.ID}}, nil)
		}
	case mesh.PeerChanged(before, &n.Node):
		// Peers get the new peer; the node its own new view.
		self := p.view
		l.publishLocked(p, upsert(p), &meshapi.MapMessage{Type: meshapi.MsgSelf, Self: &self})
	case mesh.PresenceChanged(before, &n.Node):
		l.publishLocked(p, meshapi.MapMessage{Type: meshapi.MsgPresence,
			Presence: []meshapi.Presence{{ID: n.ID, Online: n.Online, LastSeen: n.LastSeen}}}, nil)
	}
}

// NodeRemoved implements mesh.Listener: peers get a remove (unless the
// node had left their maps already, at its logout).
func (l *Log) NodeRemoved(n *mesh.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[n.ID]
	delete(l.peers, n.ID)
	last := l.order[len(l.order)-1]
	l.order[p.idx] = last
	last.idx = p.idx
	l.order[len(l.order)-1] = nil
	l.order = l.order[:len(l.order)-1]
	if !n.LoggedOut {
		l.publishLocked(p, meshapi.MapMessage{Type: meshapi.MsgRemove, Removed: []meshapi.NodeID{n.ID}}, nil)
	}
}

func upsert(p *peer) meshapi.MapMessage {
	return meshapi.MapMessage{Type: meshapi.MsgUpsert, Peers: []meshapi.Peer{peerOf(&p.view)}}
}

func peerOf(v *meshapi.Node) meshapi.Peer {
	p := v.Peer()
	p.Endpoints = mesh.NonNil(p.Endpoints)
	p.Tags = mesh.NonNil(p.Tags)
	return p
}

// publishLocked appends one change about subject: msg for its peers (those
// whose class sees its class), self (nil: nothing) for the subject itself.
func (l *Log) publishLocked(subject *peer, msg meshapi.MapMessage, self *meshapi.MapMessage) {
	if l.quiet {
		return
	}
	v := l.nextLocked()
	msg.Version = v
	e := deltalog.Entry{Version: v, Subject: uint64(subject.id), Data: encodeLine(&msg), Audience: uint32(subject.class)}
	if self != nil {
		self.Version = v
		e.Self = encodeLine(self)
	}
	l.appendLocked(e)
}

// nextLocked is the version of the next line.
func (l *Log) nextLocked() uint64 { return l.deltas.Next() + uint64(len(l.pending)) }

// appendLocked appends e, or keeps it for Release while a change is held.
func (l *Log) appendLocked(e deltalog.Entry) {
	if l.holding {
		l.pending = append(l.pending, e)
		return
	}
	l.deltas.Append(e)
	if l.cfg.Deltas != nil {
		l.cfg.Deltas.Inc()
	}
}

// PolicyChanged implements mesh.Listener: one entry that tells every node
// its new rules and the peers it gains and loses: deltas, never full maps.
func (l *Log) PolicyChanged(p *mesh.Policy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.vis
	vis := newVisibility(p.Parsed, p.Version, l.classes)
	l.vis = vis
	if l.quiet {
		l.history = []visAt{{0, vis}}
		return
	}
	groups := map[classID][]*peer{}
	for _, n := range l.order {
		if !n.view.LoggedOut {
			groups[n.class] = append(groups[n.class], n)
		}
	}
	v := l.nextLocked()
	pc := &policyChange{vis: vis, version: v, byClass: make(map[classID]*classChange, len(groups))}
	for a := range groups {
		pc.byClass[a] = newClassChange(a, groups, old, vis, v)
	}
	l.appendLocked(deltalog.Entry{Version: v, Payload: pc})
	l.history = append(l.history, visAt{from: v, vis: vis})
}

// encodedLocked returns p as a peer, encoded and followed by a comma, from
// the cache when it is fresh. The slice is never modified afterwards.
func (p *peer) encodedLocked() []byte {
	if p.enc == nil {
		pe := peerOf(&p.view)
		b, err := json.Marshal(&pe)
		if err != nil {
			panic("maps: encoding a peer: " + err.Error()) // our own type: cannot fail
		}
		p.enc = append(b, ',')
	}
	return p.enc
}

func encodeLine(m *meshapi.MapMessage) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("maps: encoding a map message: " + err.Error()) // our own type: cannot fail
	}
	return append(b, '\n')
}
