package coordinator

import (
	"net/http"
	"time"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// The core: one lock (s.mu) orders every change to the mesh, and every
// change enters by one of two doors: change (a request's, which may be
// refused) and settle (the coordinator's own, from a timer). A change runs
// a command of the mesh (its ops are applied to memory as it makes them, and
// the mesh's listener feeds the map log, the GC timers, the presence table
// and the relay), then queues the same ops for the store, in the same
// order, under the same lock: the store's order is memory's order. Whoever
// must answer only once the change is stored waits for the queue's barrier,
// outside the lock.
//
// This is the SQLite mode's sequencer: memory first, store behind. A
// replica on a shared database (replica.go) runs the same mesh commands in
// another order of things (catch up from the change log, run the command,
// write and commit, then publish), against the same seams: mesh.Mesh, its
// Listener and the event log; change and settle hand its commands over.

// change runs cmd on the mesh at the current time, unless changes are
// refused now (shutting down, or the store too far behind), and queues its
// change for the store. It returns the batch to wait for before answering.
func (s *Server) change(cmd func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError)) (*commit.Batch, *apiError) {
	if s.rep != nil {
		return s.rep.change(cmd)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.refuseLocked(); e != nil {
		return nil, e
	}
	ch, e := cmd(s.mesh, s.clock.Now())
	if e != nil {
		return nil, e
	}
	s.w.Enqueue(ch...)
	return s.w.Barrier(), nil
}

// read runs f on the mesh, under the lock.
func (s *Server) read(f func(m *mesh.Mesh)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.mesh)
}

// refuseLocked says why a change cannot be started now, or returns nil:
// the coordinator is shutting down, or the store is so far behind that
// queueing more would only grow memory. Both answers are retryable 503s.
func (s *Server) refuseLocked() *apiError {
	if s.closed {
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal, "the coordinator is shutting down; retry")
	}
	if full, n := s.w.Overloaded(); full {
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal,
			"the coordinator's store is behind (%d writes queued): retry in a moment", n)
	}
	return nil
}

// activeLocked finds the node a request authenticated as: it may have been
// deleted or logged out since.
func (s *Server) activeLocked(id meshapi.NodeID) (*mesh.Node, *apiError) {
	n := s.mesh.Node(id)
	switch {
	case n == nil:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"node %d was deleted meanwhile: register again", id)
	case n.LoggedOut:
		return nil, loggedOut(n)
	}
	return n, nil
}

func loggedOut(n *mesh.Node) *apiError {
	return errorf(http.StatusUnauthorized, meshapi.ErrLoggedOut,
		"node %d (%s) is logged out: register again with an auth key", n.ID, n.Name)
}

// settle runs a change the coordinator makes by itself (a grace ends, a
// deadline comes) and queues it for the store. It is never refused for
// load (such changes are few per node), and does nothing after Close.
func (s *Server) settle(cmd func(m *mesh.Mesh, now time.Time) mesh.Change) {
	if s.rep != nil {
		s.rep.settle(cmd)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.w.Enqueue(cmd(s.mesh, s.clock.Now())...)
	}
}

// graceEnded is the presence table's call when a node's grace ended: if it
// has not reconnected, it is offline now.
func (s *Server) graceEnded(id meshapi.NodeID, gen uint64) {
	s.settle(func(m *mesh.Mesh, now time.Time) mesh.Change {
		a, ok := s.presence.GraceEnded(id, gen)
		if n := m.Node(id); ok && n != nil && n.Home == s.self { // not taken by another replica meanwhile
			return m.GoOffline(n, mesh.Absence{LastSeen: a.LastSeen, ClockFrom: a.ClockFrom}, now)
		}
		return nil
	})
}

// gcDue is a GC timer's call when a node's deadline came: collect it, if
// the mesh agrees it is due.
func (s *Server) gcDue(id meshapi.NodeID, gen uint64) {
	s.settle(func(m *mesh.Mesh, now time.Time) mesh.Change {
		deadline, ok := s.gc.Due(id, gen)
		n := m.Node(id)
		if !ok || n == nil {
			return nil
		}
		ch, due := m.Collect(n, "", now)
		if !due {
			// Runtime timers do not fire early, but the wall clock may
			// have been stepped back: never delete before the deadline.
			s.trackGC(n)
			return nil
		}
		s.metrics.gcLag.Observe(now.Sub(deadline).Seconds())
		return ch
	})
}

// trackGC arms n's GC timer while it is an offline ephemeral node with a
// deadline, and disarms it otherwise.
func (s *Server) trackGC(n *mesh.Node) {
	if n.Ephemeral && !n.Online && !n.LoggedOut {
		s.gc.Track(n.ID, n.GCDeadline)
	} else {
		s.gc.Forget(n.ID)
	}
}

// fanout is the mesh's listener: every applied change reaches the map log
// (lines for the streams), the GC timers, the presence table (a node that
// leaves loses its stream) and the relay (its connection is closed). It
// runs under s.mu.
type fanout struct{ s *Server }

func (f fanout) NodeAdded(n *mesh.Node) {
	f.s.maps.NodeAdded(n)
	f.s.trackGC(n)
}

func (f fanout) NodeChanged(n *mesh.Node, before *meshapi.Node) {
	f.s.maps.NodeChanged(n, before)
	f.s.trackGC(n)
	switch {
	case n.LoggedOut && !before.LoggedOut:
		f.s.presence.Forget(n.ID)
		f.s.nodeGoneLocked(n.PublicKey)
	case n.Home != f.s.self:
		// Replicas: another replica holds its stream now (or none does):
		// one stream per node in the whole mesh, and no grace here.
		f.s.presence.Forget(n.ID)
	}
}

func (f fanout) NodeRemoved(n *mesh.Node) {
	f.s.maps.NodeRemoved(n)
	f.s.gc.Forget(n.ID)
	f.s.presence.Forget(n.ID)
	if !n.LoggedOut { // a logged-out node's relay was told at its logout
		f.s.nodeGoneLocked(n.PublicKey)
	}
}

func (f fanout) PolicyChanged(p *mesh.Policy) {
	f.s.maps.PolicyChanged(p)
	f.s.policyMetrics.version.Set(float64(p.Version))
}
