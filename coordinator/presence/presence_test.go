package presence_test

import (
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/presence"
	"github.com/meshinit/meshinit/meshapi"
)

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

func closed(st *presence.Stream) bool {
	select {
	case <-st.Done():
		return true
	default:
		return false
	}
}

// TestGraceEndsUnlessTheNodeComesBack: a dropped stream starts the grace;
// a reconnect within it cancels it; one that runs out is reported, once,
// with the absence's start.
func TestGraceEndsUnlessTheNodeComesBack(t *testing.T) {
	c := clock.NewFake(t0)
	type ended struct {
		id  meshapi.NodeID
		gen uint64
	}
	var fired []ended
	tb := presence.New(c, 5*time.Second, func(id meshapi.NodeID, gen uint64) { fired = append(fired, ended{id, gen}) })
	st := tb.Attach(1)
	if !tb.Holds(1, st) || !tb.Streaming(1) {
		t.Fatal("the attached stream is not held")
	}
	// A newer stream replaces the old one, which is told to end.
	st2 := tb.Attach(1)
	if !closed(st) || tb.Holds(1, st) || !tb.Holds(1, st2) {
		t.Fatal("the newer stream did not replace the old one")
	}
	if tb.Detach(1, st, t0) {
		t.Fatal("the replaced stream's end started a grace")
	}
	// Dropped, and back within the grace: nothing ends.
	tb.Detach(1, st2, t0)
	c.Advance(4 * time.Second)
	st3 := tb.Attach(1)
	c.Advance(time.Minute)
	if len(fired) != 0 {
		t.Fatalf("a grace ended although the node came back: %v", fired)
	}
	// Dropped for good: the grace ends exactly after 5s.
	dropped := c.Now()
	tb.Detach(1, st3, dropped)
	c.Advance(5*time.Second - time.Nanosecond)
	if len(fired) != 0 {
		t.Fatal("the grace ended early")
	}
	c.Advance(time.Nanosecond)
	if len(fired) != 1 {
		t.Fatalf("grace ends: %v", fired)
	}
	a, ok := tb.GraceEnded(fired[0].id, fired[0].gen)
	if !ok || !a.LastSeen.Equal(dropped) || !a.ClockFrom.Equal(dropped) {
		t.Fatalf("GraceEnded: %+v %v", a, ok)
	}
	if _, again := tb.GraceEnded(fired[0].id, fired[0].gen); again {
		t.Fatal("the same grace ended twice")
	}
}

// TestForgetClosesTheStream: a node that leaves loses its stream and its
// grace; a grace timer that fired meanwhile is stale.
func TestForgetClosesTheStream(t *testing.T) {
	c := clock.NewFake(t0)
	var gen uint64
	tb := presence.New(c, time.Second, func(_ meshapi.NodeID, g uint64) { gen = g })
	st := tb.Attach(7)
	tb.Forget(7)
	if !closed(st) || tb.Streaming(7) {
		t.Fatal("Forget left the stream open")
	}
	tb.StartGrace(8, presence.Absence{LastSeen: t0, ClockFrom: t0})
	c.Advance(time.Second)
	tb.Forget(8)
	if _, ok := tb.GraceEnded(8, gen); ok {
		t.Fatal("a grace of a forgotten node ended")
	}
}
