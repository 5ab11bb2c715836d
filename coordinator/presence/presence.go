// Package presence keeps who holds a map stream, and the reconnect grace
// of those whose stream dropped: a node is online while it holds its
// stream and for one grace after it drops, so a quick reconnect is
// invisible to its peers. One stream per node: a new one replaces the old.
//
// The table only keeps streams and timers; what being online means (the
// state change, the event, the map line) is the mesh's. When a grace ends
// without a reconnect, the table tells its owner (Config.Ended), who asks
// GraceEnded whether that is still so and then records the node offline.
// The owner serialises every call (it holds its lock); Ended is called
// outside any lock, from a timer.
package presence

import (
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/meshapi"
)

// Stream is one live map stream. The table closes it when the node leaves
// or a newer stream replaces it.
type Stream struct {
	done chan struct{}
	once sync.Once
}

// Done is closed when the stream must end.
func (st *Stream) Done() <-chan struct{} { return st.done }

func (st *Stream) close() { st.once.Do(func() { close(st.done) }) }

// Absence is how a node's grace began: when it was last seen, and when its
// inactivity clock started.
type Absence struct {
	LastSeen  time.Time
	ClockFrom time.Time
}

// Table is the presence of every node. The zero value is not usable: New.
type Table struct {
	clock clock.Clock
	grace time.Duration
	ended func(id meshapi.NodeID, gen uint64)
	nodes map[meshapi.NodeID]*entry
}

type entry struct {
	stream  *Stream
	gen     uint64 // invalidates a grace timer that fired after a reconnect
	timer   clock.Timer
	absence Absence
}

// New returns an empty table. ended is called, from a timer and outside any
// lock, when a node's grace ends; pass its arguments to GraceEnded.
func New(c clock.Clock, grace time.Duration, ended func(id meshapi.NodeID, gen uint64)) *Table {
	return &Table{clock: c, grace: grace, ended: ended, nodes: map[meshapi.NodeID]*entry{}}
}

func (t *Table) entry(id meshapi.NodeID) *entry {
	e := t.nodes[id]
	if e == nil {
		e = &entry{}
		t.nodes[id] = e
	}
	return e
}

// Attach makes a new stream id's live stream: a previous one is closed (the
// newer stream wins), and a running grace ends.
func (t *Table) Attach(id meshapi.NodeID) *Stream {
	e := t.entry(id)
	if e.stream != nil {
		e.stream.close()
	}
	t.stopGrace(e)
	e.stream = &Stream{done: make(chan struct{})}
	return e.stream
}

// Streaming reports whether id holds a stream.
func (t *Table) Streaming(id meshapi.NodeID) bool {
	e := t.nodes[id]
	return e != nil && e.stream != nil
}

// Has reports whether id holds a stream or is in its grace.
func (t *Table) Has(id meshapi.NodeID) bool { return t.nodes[id] != nil }

// Nodes returns the nodes that hold a stream or are in their grace.
func (t *Table) Nodes() []meshapi.NodeID {
	ids := make([]meshapi.NodeID, 0, len(t.nodes))
	for id := range t.nodes {
		ids = append(ids, id)
	}
	return ids
}

// Holds reports whether st is id's live stream.
func (t *Table) Holds(id meshapi.NodeID, st *Stream) bool {
	e := t.nodes[id]
	return e != nil && e.stream == st
}

// Detach is called when st ended at now. If it was id's live stream, the
// node's grace begins (absent from now) and Detach reports true.
func (t *Table) Detach(id meshapi.NodeID, st *Stream, now time.Time) bool {
	e := t.nodes[id]
	if e == nil || e.stream != st {
		return false // replaced by a newer stream, or the node is gone
	}
	e.stream = nil
	t.StartGrace(id, Absence{LastSeen: now, ClockFrom: now})
	return true
}

// StartGrace begins id's grace with absence a (for a node that was online
// when the coordinator went down: seen at its last heartbeat, its clock
// from the start).
func (t *Table) StartGrace(id meshapi.NodeID, a Absence) {
	e := t.entry(id)
	t.stopGrace(e)
	e.absence = a
	gen := e.gen
	e.timer = t.clock.AfterFunc(t.grace, func() { t.ended(id, gen) })
}

// GraceEnded reports, for a grace that ended (the arguments of ended),
// whether the node is still without a stream; if so it returns its absence
// and forgets the node (it is offline now).
func (t *Table) GraceEnded(id meshapi.NodeID, gen uint64) (Absence, bool) {
	e := t.nodes[id]
	if e == nil || e.gen != gen || e.stream != nil || e.timer == nil {
		return Absence{}, false
	}
	delete(t.nodes, id)
	return e.absence, true
}

// Forget ends id's session: its stream is closed and its grace stopped (a
// deleted or logged-out node). The stream's handler then finds the stream
// no longer the node's and leaves it alone.
func (t *Table) Forget(id meshapi.NodeID) {
	e := t.nodes[id]
	if e == nil {
		return
	}
	t.stopGrace(e)
	if e.stream != nil {
		e.stream.close()
	}
	delete(t.nodes, id)
}

// CloseStreams closes every live stream; each node's grace begins as its
// stream's handler detaches it (Detach).
func (t *Table) CloseStreams() {
	for _, e := range t.nodes {
		if e.stream != nil {
			e.stream.close()
		}
	}
}

// CloseAll closes every stream and stops every grace, as at shutdown: the
// nodes stay online as far as the state says.
func (t *Table) CloseAll() {
	for id := range t.nodes {
		t.Forget(id)
	}
}

func (t *Table) stopGrace(e *entry) {
	e.gen++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}
