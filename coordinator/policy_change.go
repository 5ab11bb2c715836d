package coordinator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/policy"
)

// Meta names of the stored policy.
const (
	metaPolicySource  = "policy_source"
	metaPolicyVersion = "policy_version"
	metaPolicyUpdated = "policy_updated"
)

// restorePolicy puts the stored policy back in force. A stored policy that
// no longer loads is an error: starting without it would open the mesh.
func (s *Server) restorePolicy(meta map[string]string) error {
	if v := meta[metaPolicyVersion]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("stored policy version %q: %v", v, err)
		}
		s.acl.version = n
	}
	if ns, err := strconv.ParseInt(meta[metaPolicyUpdated], 10, 64); err == nil {
		s.acl.updated = time.Unix(0, ns)
	}
	s.policyMetrics.version.Set(float64(s.acl.version))
	src := meta[metaPolicySource]
	if src == "" {
		return nil
	}
	p, err := policy.Load([]byte(src))
	if err != nil {
		return fmt.Errorf("the stored access policy no longer loads (fix it with \"meshcoord policy set\" on a coordinator that starts, or remove it): %w", err)
	}
	s.acl.source = []byte(src)
	s.acl.vis = newVisibility(p, s.acl.version, s.acl.classes)
	s.acl.history = []visAt{{0, s.acl.vis}}
	return nil
}

// policyChange is the map log entry of a policy change: what each class
// of nodes must do to its map, encoded once per class.
type policyChange struct {
	vis     *visibility
	version uint64
	byClass map[classID]*classChange
}

// classChange is one class's part of a policy change.
type classChange struct {
	// line is the whole message for every node of the class, when the
	// class's view of itself did not change (the common case).
	line []byte
	// Otherwise the message differs per node (a node never lists itself):
	// it is built at delivery from these parts.
	policy   *meshapi.NodePolicy
	removed  []meshapi.NodeID // other classes' nodes
	peers    [][]byte         // other classes' nodes, encoded, each with a comma
	sameGone bool             // the class stopped seeing itself
	same     []*node          // the class's own nodes, when sameGone or newly seen
	sameEnc  [][]byte
}

// setPolicyLocked puts p (nil: none) in force as a new version, stores it,
// and publishes one map log entry that tells every node its new rules and
// the peers it gains and loses: deltas, never full maps.
func (s *Server) setPolicyLocked(p *policy.Policy, src []byte, now time.Time) uint64 {
	old := s.acl.vis
	s.acl.version++
	s.acl.source, s.acl.updated = src, now
	vis := newVisibility(p, s.acl.version, s.acl.classes)
	s.acl.vis = vis
	s.w.Enqueue(store.SetMeta(metaPolicySource, string(src)))
	s.w.Enqueue(store.SetMeta(metaPolicyVersion, strconv.FormatUint(s.acl.version, 10)))
	s.w.Enqueue(store.SetMeta(metaPolicyUpdated, strconv.FormatInt(now.UnixNano(), 10)))

	groups := map[classID][]*node{}
	for _, n := range s.live {
		if !n.LoggedOut {
			c := s.classLocked(n)
			groups[c] = append(groups[c], n)
		}
	}
	v := s.deltas.Next()
	pc := &policyChange{vis: vis, version: v, byClass: make(map[classID]*classChange, len(groups))}
	for a := range groups {
		pc.byClass[a] = s.classChangeLocked(a, groups, old, vis, v)
	}
	s.deltas.Append(deltalog.Entry{Version: v, Payload: pc})
	s.acl.history = append(s.acl.history, visAt{from: v, vis: vis})
	s.metrics.deltas.Inc()
	s.policyMetrics.version.Set(float64(s.acl.version))
	return s.acl.version
}

func (s *Server) classChangeLocked(a classID, groups map[classID][]*node, old, vis *visibility, v uint64) *classChange {
	cc := &classChange{policy: vis.nodePolicy(a)}
	for b, members := range groups {
		before, after := old.sees(a, b), vis.sees(a, b)
		if before == after {
			continue
		}
		if b == a {
			cc.sameGone = before
			cc.same = members
			for _, n := range members {
				cc.sameEnc = append(cc.sameEnc, n.encodedPeer())
			}
			continue
		}
		for _, n := range members {
			if before {
				cc.removed = append(cc.removed, n.ID)
			} else {
				cc.peers = append(cc.peers, n.encodedPeer())
			}
		}
	}
	slices.Sort(cc.removed)
	if cc.same == nil {
		cc.line = cc.build(v, nil)
	}
	return cc
}

// build encodes the class's message for one node (self nil: for all).
func (cc *classChange) build(v uint64, self *node) []byte {
	msg := meshapi.MapMessage{Type: meshapi.MsgPolicy, Version: v, Policy: cc.policy, Removed: cc.removed}
	peers := cc.peers
	if self != nil {
		if cc.sameGone {
			msg.Removed = slices.Clone(cc.removed)
			for _, n := range cc.same {
				if n != self {
					msg.Removed = append(msg.Removed, n.ID)
				}
			}
		} else {
			peers = slices.Clone(peers)
			for i, n := range cc.same {
				if n != self {
					peers = append(peers, cc.sameEnc[i])
				}
			}
		}
	}
	head, err := json.Marshal(msg)
	if err != nil {
		panic("coordinator: encoding a policy message: " + err.Error())
	}
	if len(peers) == 0 {
		return append(head, '\n')
	}
	out := make([]byte, 0, len(head)+16+len(peers)*200)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"peers":[`...)
	for i, p := range peers {
		if i == len(peers)-1 {
			p = p[:len(p)-1] // no comma after the last
		}
		out = append(out, p...)
	}
	return append(out, "]}\n"...)
}

// lineFor is the policy message for one node of class c; nil when the
// class was unknown to the change (the stream then resynchronises).
func (pc *policyChange) lineFor(c classID, self *node) []byte {
	cc := pc.byClass[c]
	if cc == nil {
		return nil
	}
	if cc.line != nil {
		return cc.line
	}
	return cc.build(pc.version, self)
}
