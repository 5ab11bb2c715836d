package coordinator

import (
	"encoding/json"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/meshapi"
)

// The map broker: every change visible in maps becomes one delta line,
// encoded here once and appended to s.deltas; every stream copies the same
// bytes. The subject of a change sees a different line (its own "self") or
// none. Callers hold s.mu, which orders versions.

func (s *Server) publishLocked(subject *node, msg meshapi.MapMessage, self *meshapi.MapMessage) {
	v := s.deltas.Next()
	msg.Version = v
	e := deltalog.Entry{Version: v, Subject: uint64(subject.ID), Data: encodeLine(&msg), Audience: uint32(s.classLocked(subject))}
	if self != nil {
		self.Version = v
		e.Self = encodeLine(self)
	}
	s.deltas.Append(e)
	s.metrics.deltas.Inc()
}

// publishUpsertLocked tells peers about a new or changed node; the node
// itself gets a self message when its own view changed (withSelf).
func (s *Server) publishUpsertLocked(n *node, withSelf bool) {
	msg := meshapi.MapMessage{Type: meshapi.MsgUpsert, Peers: []meshapi.Peer{n.peer()}}
	var self *meshapi.MapMessage
	if withSelf {
		v := n.view()
		self = &meshapi.MapMessage{Type: meshapi.MsgSelf, Self: &v}
	}
	s.publishLocked(n, msg, self)
}

func (s *Server) publishRemoveLocked(n *node) {
	s.publishLocked(n, meshapi.MapMessage{Type: meshapi.MsgRemove, Removed: []meshapi.NodeID{n.ID}}, nil)
}

func (s *Server) publishPresenceLocked(n *node) {
	s.publishLocked(n, meshapi.MapMessage{Type: meshapi.MsgPresence,
		Presence: []meshapi.Presence{{ID: n.ID, Online: n.Online, LastSeen: n.LastSeen}}}, nil)
}

func encodeLine(m *meshapi.MapMessage) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("coordinator: encoding a map message: " + err.Error()) // our own type: cannot fail
	}
	return append(b, '\n')
}
