package maps

import (
	"encoding/json"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/meshapi"
)

// Full is a node's full map at one version: the node itself and its
// peers' encodings (immutable, shared with the table's cache), taken
// under the log's lock and written after it is released.
type Full struct {
	Version uint64
	self    meshapi.Node
	peers   [][]byte
	vis     *visibility // the policy in force at Version
	class   classID
}

// View is what a stream needs to filter the log for its node: the policy
// in force at its cursor, and the node's tag class. Each stream has its own.
type View struct {
	vis   *visibility
	class classID
	self  *peer
	// Withheld counts the lines not sent because of the policy, since the
	// stream last read it.
	Withheld int
}

// Snapshot returns id's full map at the current version, and the view
// that reads on from there; ok is false if the node is not (or no longer)
// in the maps.
func (l *Log) Snapshot(id meshapi.NodeID) (Full, View, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.holding { // the table is ahead of the ring until the commit
		l.held.Wait()
	}
	p := l.peers[id]
	if p == nil || p.view.LoggedOut {
		return Full{}, View{}, false
	}
	vis := l.vis
	fm := Full{Version: l.deltas.Last(), self: p.view, peers: make([][]byte, 0, len(l.order)), vis: vis, class: p.class}
	for _, o := range l.order {
		if o == p || o.view.LoggedOut || !vis.sees(p.class, o.class) {
			continue
		}
		fm.peers = append(fm.peers, o.encodedLocked())
	}
	return fm, View{vis: vis, class: p.class, self: p}, true
}

// Resume returns the view for id's stream resuming after version since, if
// the ring still holds every line after it.
func (l *Log) Resume(id meshapi.NodeID, since uint64) (View, bool) {
	if _, _, ok := l.deltas.Read(since, make([]deltalog.Entry, 0, 1), 0); !ok {
		return View{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[id]
	if p == nil || p.view.LoggedOut {
		return View{}, false
	}
	return View{vis: l.visAtLocked(since), class: p.class, self: p}, true
}

// FullLine returns fm as one line, in parts: the header fields encoded
// normally and the cached peer encodings spliced in as "peers", so a
// 10 000-peer map costs copies, not 10 000 encodings.
func (l *Log) FullLine(fm *Full) ([][]byte, error) {
	head, err := json.Marshal(meshapi.MapMessage{
		Type: meshapi.MsgFull, Version: fm.Version, Epoch: l.cfg.Epoch, Domain: l.cfg.Domain,
		Prefixes: l.cfg.Prefixes, Self: &fm.self, KeepaliveInterval: meshapi.Duration(l.cfg.Keepalive),
		Policy: fm.vis.nodePolicy(fm.class),
	})
	if err != nil {
		return nil, err
	}
	if len(fm.peers) == 0 {
		return [][]byte{append(head, '\n')}, nil
	}
	// head without its closing brace, then the peers; each cached peer ends
	// with a comma, which the last one must not have.
	parts := make([][]byte, 0, len(fm.peers)+3)
	parts = append(parts, head[:len(head)-1], []byte(`,"peers":[`))
	last := len(fm.peers) - 1
	parts = append(parts, fm.peers[:last]...)
	parts = append(parts, fm.peers[last][:len(fm.peers[last])-1], []byte("]}\n"))
	return parts, nil
}

// KeepaliveLine is a keepalive at version v.
func (l *Log) KeepaliveLine(v uint64) []byte {
	return encodeLine(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: v, Epoch: l.cfg.Epoch})
}

// Line returns what the stream writes for e (nil: nothing), and moves the
// view past a policy change. ok is false when the stream must start over
// with a full map.
func (v *View) Line(e *deltalog.Entry) (line []byte, ok bool) {
	if _, ok := e.Payload.(resync); ok {
		return nil, false
	}
	if pc, isPolicy := e.Payload.(*policyChange); isPolicy {
		line = pc.lineFor(v.class, v.self)
		if line == nil {
			return nil, false
		}
		v.vis = pc.vis
		return line, true
	}
	if e.Subject == uint64(v.self.id) {
		return e.Self, true // nil: the node skips news about itself
	}
	if e.Audience != 0 && !v.vis.sees(v.class, classID(e.Audience)) {
		v.Withheld++
		return nil, true
	}
	return e.Data, true
}
