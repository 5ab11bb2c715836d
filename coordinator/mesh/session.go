package mesh

import (
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// A node is online while it holds its map stream, and for one reconnect
// grace after the stream drops (the owner keeps the streams and the grace
// timers; these commands are what they decide).

// Connect records that n opened its map stream at now on replica home
// (empty on SQLite): it is online and has no GC deadline. Back within its
// grace, peers never saw it leave: only the deadline (if any) is cleared
// and the home moved, without an event.
func (m *Mesh) Connect(n *Node, home string, now time.Time) Change {
	c := m.begin(now)
	if n.Online {
		if !n.GCDeadline.IsZero() || n.Home != home {
			c.putNode(n, func(r *store.NodeRecord) { r.GCDeadline, r.Home = time.Time{}, home })
		}
		return c.ops
	}
	c.putNode(n, func(r *store.NodeRecord) {
		r.Online, r.LastSeen, r.GCDeadline, r.Home = true, now, time.Time{}, home
	})
	c.event(meshapi.EventOnline, n, "", "")
	return c.ops
}

// Absence is when a node's absence began, as its grace ends.
type Absence struct {
	// LastSeen is when it was last seen: when its stream dropped, or, for a
	// node online when the coordinator went down, its last heartbeat.
	LastSeen time.Time
	// ClockFrom is when its inactivity clock started: the drop, or the
	// coordinator's start for a node online when it went down.
	ClockFrom time.Time
}

// GoOffline records that n's grace ended at now without a reconnect: it
// is offline, last seen as a says, and an ephemeral node gets its GC
// deadline (ClockFrom + its timeout). One whose deadline has passed
// already (a timeout shorter than the grace) is collected at once.
func (m *Mesh) GoOffline(n *Node, a Absence, now time.Time) Change {
	c := m.begin(now)
	if !n.Online || n.LoggedOut {
		return nil
	}
	var deadline time.Time
	if n.Ephemeral {
		deadline = a.ClockFrom.Add(m.Timeout(n))
	}
	c.putNode(n, func(r *store.NodeRecord) {
		r.Online, r.LastSeen, r.GCDeadline, r.Home = false, a.LastSeen, deadline, ""
	})
	c.event(meshapi.EventOffline, n, "", "")
	if n.Ephemeral && !deadline.After(now) {
		c.deleteNode(n, meshapi.ReasonGC, "")
	}
	return c.ops
}

// Collect deletes n (reason gc) if it is an offline ephemeral node past its
// deadline at now. due is false when it is not (yet): reconnected, or the
// wall clock stepped back before the deadline.
func (m *Mesh) Collect(n *Node, detail string, now time.Time) (ch Change, due bool) {
	if !n.Ephemeral || n.Online || n.LoggedOut || n.GCDeadline.IsZero() || now.Before(n.GCDeadline) {
		return nil, false
	}
	c := m.begin(now)
	c.deleteNode(n, meshapi.ReasonGC, detail)
	return c.ops, true
}

// Delete removes n for good: its name and addresses are free at once, and
// the event carries the reason.
func (m *Mesh) Delete(n *Node, reason meshapi.DeleteReason, detail string, now time.Time) Change {
	c := m.begin(now)
	c.deleteNode(n, reason, detail)
	return c.ops
}

// Logout ends n's session: an ephemeral node is deleted with reason; any
// other node is logged out (it stays listed, keeps its name and addresses,
// and may no longer use the mesh). It reports whether n was deleted.
func (m *Mesh) Logout(n *Node, reason meshapi.DeleteReason, detail string, now time.Time) (ch Change, deleted bool) {
	c := m.begin(now)
	if n.Ephemeral {
		c.deleteNode(n, reason, detail)
		return c.ops, true
	}
	c.putNode(n, func(r *store.NodeRecord) {
		if r.Online {
			r.LastSeen = now
		}
		r.Online, r.LoggedOut, r.GCDeadline, r.Home = false, true, time.Time{}, ""
	})
	c.event(meshapi.EventLoggedOut, n, "", detail)
	return c.ops, false
}
