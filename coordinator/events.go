package coordinator

import (
	"encoding/json"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// emitLocked records a lifecycle event: it gets the next sequence number,
// is stored by the writer, logged as one line, and appended to the event log
// that "events --follow" reads. Callers hold s.mu, so events are in the
// order the changes happened.
func (s *Server) emitLocked(typ meshapi.EventType, n *node, reason meshapi.DeleteReason, detail string, at time.Time) {
	s.eventSeq++
	e := meshapi.Event{Seq: s.eventSeq, Time: at, Type: typ, NodeID: n.ID, Name: n.Name, Reason: reason, Detail: detail}
	s.w.enqueue(store.AddEvent(e))
	line, err := json.Marshal(e)
	if err != nil {
		panic("coordinator: encoding an event: " + err.Error()) // our own type: cannot fail
	}
	s.events.Append(deltalog.Entry{Version: e.Seq, Subject: uint64(n.ID), Data: append(line, '\n')})
	s.metrics.event(e)
	attrs := []any{"seq", e.Seq, "type", string(typ), "node", uint64(n.ID), "name", n.Name}
	if reason != "" {
		attrs = append(attrs, "reason", string(reason))
	}
	if detail != "" {
		attrs = append(attrs, "detail", detail)
	}
	s.log.Info("node "+string(typ), attrs...)
}
