package coordinator

import (
	"strings"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// deleteLocked removes n for good: its stream is closed, its name and
// addresses are free at once, peers get the removal, and the event carries
// the reason (and detail, if any).
func (s *Server) deleteLocked(n *node, reason meshapi.DeleteReason, detail string, now time.Time) {
	endSessionLocked(n)
	s.nodeGoneLocked(n)
	s.unindexLocked(n)
	if err := s.pool.Release(n.IPv4, n.IPv6); err != nil {
		// A bug (the index and the pool disagree). It is told with the
		// event, which is logged once stored: nothing is logged under s.mu.
		detail = strings.TrimSpace(detail + " (internal error releasing its addresses: " + err.Error() + ")")
	}
	s.w.Enqueue(store.DeleteNode(uint64(n.ID)))
	s.emitLocked(meshapi.EventDeleted, n, reason, detail, now)
	if !n.LoggedOut { // a logged-out node was already removed from maps
		s.publishRemoveLocked(n)
	}
	s.metrics.deleted(reason)
}

// logoutLocked ends n's session: an ephemeral node is deleted at once with
// reason; any other node is marked logged out (it stays listed, keeps its
// name and addresses, and may no longer use the mesh). Either way its stream
// closes and peers get the removal. It reports whether n was deleted.
func (s *Server) logoutLocked(n *node, reason meshapi.DeleteReason, detail string, now time.Time) bool {
	if n.Ephemeral {
		s.deleteLocked(n, reason, detail, now)
		return true
	}
	endSessionLocked(n)
	s.nodeGoneLocked(n)
	if n.Online {
		n.LastSeen = now
	}
	n.Online = false
	n.LoggedOut = true
	n.GCDeadline = time.Time{}
	n.changed()
	s.w.Enqueue(store.PutNode(n.record()))
	s.emitLocked(meshapi.EventLoggedOut, n, "", detail, now)
	s.publishRemoveLocked(n)
	return false
}

// endSessionLocked cancels n's reconnect grace and GC timers (timers that
// already fired see their generation changed and do nothing) and closes its
// map stream. Its handler then finds the stream no longer n's and leaves the
// node alone.
func endSessionLocked(n *node) {
	n.graceGen++
	n.gcGen++
	stopTimer(&n.graceTimer)
	stopTimer(&n.gcTimer)
	if n.stream != nil {
		n.stream.close()
		n.stream = nil
	}
}
