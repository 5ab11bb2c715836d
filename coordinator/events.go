package coordinator

import (
	"context"

	"github.com/meshinit/meshinit/meshapi"
)

// Events are numbered by the mesh's rules, in the order of the changes,
// and stored by the writer with the change. Nobody sees an event before it
// is stored: the writer hands each committed batch to the event log, which
// followers read, and the log line is written then too. So an event a
// follower has seen survives a crash, and after a restart the numbering
// continues from the last stored event: no number is ever given to two
// different events.

// logEvent is every stored event's line in the log, and its count in the
// metrics (the event log calls it, never under s.mu).
func (s *Server) logEvent(e meshapi.Event) {
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

// pruneEvents deletes the stored events older than the retention.
func (s *Server) pruneEvents() {
	if err := s.events.Prune(context.Background(), s.clock.Now().Add(-s.cfg.EventRetention)); err != nil {
		s.log.Error("pruning old events", "err", err)
	}
}
