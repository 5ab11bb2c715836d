package coordinator

import (
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Presence: a node is online while it holds its map stream, and for one
// reconnect grace after the stream drops, so a quick reconnect is invisible
// to peers. One stream per node: a new one replaces the old.

// attachLocked makes st the node's live stream.
func (s *Server) attachLocked(n *node, st *stream, now time.Time) {
	if n.stream != nil {
		n.stream.close() // the newer stream wins; the old handler exits quietly
	}
	n.stream = st
	n.graceGen++
	stopTimer(&n.graceTimer)
	n.gcGen++
	stopTimer(&n.gcTimer)
	if n.Online {
		// Back within the grace: peers never saw it leave. It no longer
		// has a deadline, and the store should know it is online.
		if !n.GCDeadline.IsZero() {
			n.GCDeadline = time.Time{}
			s.w.Enqueue(store.PutNode(n.record()))
		}
		return
	}
	n.Online = true
	n.LastSeen = now
	n.GCDeadline = time.Time{}
	n.changed()
	s.w.Enqueue(store.PutNode(n.record()))
	s.emitLocked(meshapi.EventOnline, n, "", "", now)
	s.publishPresenceLocked(n)
}

// detachLocked is called when st ended. If it was the node's live stream,
// the node's inactivity clock starts now and its grace begins.
func (s *Server) detachLocked(n *node, st *stream, now time.Time) {
	if n.stream != st {
		return // replaced by a newer stream, or the node is gone
	}
	n.stream = nil
	n.LastSeen = now
	n.clockFrom = now
	n.changed()
	s.startGrace(n)
}

// startGrace arms the timer that marks n offline unless it reconnects.
func (s *Server) startGrace(n *node) {
	n.graceGen++
	gen, id := n.graceGen, n.ID
	stopTimer(&n.graceTimer)
	n.graceTimer = s.clock.AfterFunc(s.cfg.ReconnectGrace, func() { s.graceExpired(id, gen) })
}

func (s *Server) graceExpired(id meshapi.NodeID, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if s.closed || n == nil || n.graceGen != gen || n.stream != nil || !n.Online {
		return
	}
	now := s.clock.Now()
	n.graceTimer = nil
	n.Online = false
	n.changed()
	if n.Ephemeral && !n.LoggedOut {
		n.GCDeadline = n.clockFrom.Add(s.timeout(n))
	}
	s.w.Enqueue(store.PutNode(n.record()))
	s.emitLocked(meshapi.EventOffline, n, "", "", now)
	s.publishPresenceLocked(n)
	if n.Ephemeral && !n.GCDeadline.After(now) {
		s.deleteLocked(n, meshapi.ReasonGC, "", now) // the timeout was shorter than the grace
		return
	}
	s.scheduleGC(n)
}
