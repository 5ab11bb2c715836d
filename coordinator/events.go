package coordinator

import (
	"context"
	"encoding/json"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Events are numbered under the state lock, in the order the changes
// happened, and stored by the writer with the change. Nobody sees an event
// before it is stored: followers read the in-memory log, which the writer
// appends to only after the commit, and the log line is written then too. So
// an event a follower has seen survives a crash, and after a restart the
// numbering continues from the last stored event: no number is ever given
// to two different events.

// emitLocked records a lifecycle event: it gets the next sequence number
// and is queued for the store. Callers hold s.mu.
func (s *Server) emitLocked(typ meshapi.EventType, n *node, reason meshapi.DeleteReason, detail string, at time.Time) {
	s.eventSeq++
	s.w.Enqueue(store.AddEvent(meshapi.Event{
		Seq: s.eventSeq, Time: at, Type: typ, NodeID: n.ID, Name: n.Name, Reason: reason, Detail: detail,
	}))
}

// publishStored hands the events of a committed batch to followers, the
// metrics and the log. The writer calls it after each commit, in order.
func (s *Server) publishStored(ops []store.Op) {
	for i := range ops {
		e, ok := ops[i].Event()
		if !ok {
			continue
		}
		line, err := json.Marshal(e)
		if err != nil {
			panic("coordinator: encoding an event: " + err.Error()) // our own type: cannot fail
		}
		s.events.Append(deltalog.Entry{Version: e.Seq, Subject: uint64(e.NodeID), Data: append(line, '\n')})
		s.metrics.event(e)
		attrs := []any{"seq", e.Seq, "type", string(e.Type), "node", uint64(e.NodeID), "name", e.Name}
		if e.Reason != "" {
			attrs = append(attrs, "reason", string(e.Reason))
		}
		if e.Detail != "" {
			attrs = append(attrs, "detail", e.Detail)
		}
		s.log.Info("node "+string(e.Type), attrs...)
	}
}

// pruneBatch is how many events one prune statement deletes, so that
// pruning a large backlog never holds the store for long.
const pruneBatch = 5000

// pruneInterval is how often events past the retention are deleted: a
// tenth of the retention, at most hourly.
func pruneInterval(retention time.Duration) time.Duration { return min(retention/10, time.Hour) }

// pruneEvents deletes the stored events older than the retention, in
// batches, until none is left.
func (s *Server) pruneEvents() {
	before := s.clock.Now().Add(-s.cfg.EventRetention)
	for {
		n, through, err := s.st.PruneEvents(context.Background(), before, pruneBatch)
		if err != nil {
			s.log.Error("pruning old events", "err", err)
			return
		}
		if through > s.pruned.Load() {
			s.pruned.Store(through) // followers skip them in memory too
		}
		if n < pruneBatch {
			return
		}
	}
}
