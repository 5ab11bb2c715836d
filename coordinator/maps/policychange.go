package maps

import (
	"encoding/json"
	"slices"

	"github.com/meshinit/meshinit/meshapi"
)

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
	same     []*peer          // the class's own nodes, when sameGone or newly seen
	sameEnc  [][]byte
}

func newClassChange(a classID, groups map[classID][]*peer, old, vis *visibility, v uint64) *classChange {
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
				cc.sameEnc = append(cc.sameEnc, n.encodedLocked())
			}
			continue
		}
		for _, n := range members {
			if before {
				cc.removed = append(cc.removed, n.id)
			} else {
				cc.peers = append(cc.peers, n.encodedLocked())
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
func (cc *classChange) build(v uint64, self *peer) []byte {
	msg := meshapi.MapMessage{Type: meshapi.MsgPolicy, Version: v, Policy: cc.policy, Removed: cc.removed}
	peers := cc.peers
	if self != nil {
		if cc.sameGone {
			msg.Removed = slices.Clone(cc.removed)
			for _, n := range cc.same {
				if n != self {
					msg.Removed = append(msg.Removed, n.id)
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
func (pc *policyChange) lineFor(c classID, self *peer) []byte {
	cc := pc.byClass[c]
	if cc == nil {
		return nil
	}
	if cc.line != nil {
		return cc.line
	}
	return cc.build(pc.version, self)
}
