package coordinator

import (
	"github.com/meshinit/meshinit/meshapi"
)

// The delayed ephemeral GC. An offline ephemeral node has a deadline
// (n.GCDeadline, stored with the node) and a runtime timer set for it, so
// it is deleted when due, not at the next sweep. Connecting clears the
// deadline; dropping sets a new one after the reconnect grace.

// scheduleGC arms n's timer for its deadline, if it has one.
func (s *Server) scheduleGC(n *node) {
	n.gcGen++
	stopTimer(&n.gcTimer)
	if !n.Ephemeral || n.GCDeadline.IsZero() || n.stream != nil {
		return
	}
	gen, id, deadline := n.gcGen, n.ID, n.GCDeadline
	n.gcTimer = s.clock.AfterFunc(deadline.Sub(s.clock.Now()), func() { s.gcDue(id, gen) })
}

func (s *Server) gcDue(id meshapi.NodeID, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if s.closed || n == nil || n.gcGen != gen || n.stream != nil || n.GCDeadline.IsZero() {
		return
	}
	now := s.clock.Now()
	if now.Before(n.GCDeadline) {
		// Runtime timers do not fire early, but the wall clock may have
		// been stepped back: never delete before the deadline.
		s.scheduleGC(n)
		return
	}
	n.gcTimer = nil
	s.metrics.gcLag.Observe(now.Sub(n.GCDeadline).Seconds())
	s.deleteLocked(n, meshapi.ReasonGC, "", now)
}
