// Package gc arms the delayed collection of offline ephemeral nodes: one
// runtime timer per deadline (the Go runtime's timer heap), not a periodic
// sweep, so a node is collected when it is due, not at the next poll.
//
// The deadlines are the mesh's (stored with each node); the owner tells the
// timers what they are (Track, from the mesh's Listener callbacks), and
// when one fires, the owner checks under its lock that it is still due
// (Due) and asks the mesh to collect the node, which checks the deadline
// again against the state. Firing late or twice, or for a node that came
// back, does nothing.
package gc

import (
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/meshapi"
)

// Timers are the armed deadlines. The owner serialises every call; due is
// called from a timer, outside any lock.
type Timers struct {
	clock clock.Clock
	due   func(id meshapi.NodeID, gen uint64)
	armed map[meshapi.NodeID]*timer
	gen   uint64
}

type timer struct {
	t        clock.Timer
	gen      uint64
	deadline time.Time
}

// New returns timers that call due(id, gen) when a node's deadline comes.
func New(c clock.Clock, due func(id meshapi.NodeID, gen uint64)) *Timers {
	return &Timers{clock: c, due: due, armed: map[meshapi.NodeID]*timer{}}
}

// Track arms id's timer for deadline (re-arming only if it moved); a zero
// deadline disarms it.
func (ts *Timers) Track(id meshapi.NodeID, deadline time.Time) {
	if deadline.IsZero() {
		ts.Forget(id)
		return
	}
	if t := ts.armed[id]; t != nil {
		if t.deadline.Equal(deadline) {
			return
		}
		t.t.Stop()
	}
	ts.gen++
	gen := ts.gen
	ts.armed[id] = &timer{gen: gen, deadline: deadline,
		t: ts.clock.AfterFunc(deadline.Sub(ts.clock.Now()), func() { ts.due(id, gen) })}
}

// Forget disarms id's timer.
func (ts *Timers) Forget(id meshapi.NodeID) {
	if t := ts.armed[id]; t != nil {
		t.t.Stop()
		delete(ts.armed, id)
	}
}

// Due reports whether a timer that fired (due's arguments) is still the
// one armed for id, and disarms it: the owner then asks the mesh.
func (ts *Timers) Due(id meshapi.NodeID, gen uint64) (deadline time.Time, ok bool) {
	t := ts.armed[id]
	if t == nil || t.gen != gen {
		return time.Time{}, false
	}
	delete(ts.armed, id)
	return t.deadline, true
}

// Stop disarms every timer.
func (ts *Timers) Stop() {
	for id := range ts.armed {
		ts.Forget(id)
	}
}
