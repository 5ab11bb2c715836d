package gc_test

import (
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/gc"
	"github.com/meshinit/meshinit/meshapi"
)

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

// TestTimersFireAtTheirDeadline: each tracked node's timer fires at its
// deadline, once; moving, clearing or forgetting a deadline disarms the
// old timer.
func TestTimersFireAtTheirDeadline(t *testing.T) {
	c := clock.NewFake(t0)
	var ts *gc.Timers
	fired := map[meshapi.NodeID]time.Time{}
	ts = gc.New(c, func(id meshapi.NodeID, gen uint64) {
		if deadline, ok := ts.Due(id, gen); ok {
			fired[id] = deadline
		}
	})
	ts.Track(1, t0.Add(time.Minute))
	ts.Track(2, t0.Add(time.Minute))
	ts.Track(2, t0.Add(2*time.Minute)) // moved
	ts.Track(3, t0.Add(time.Minute))
	ts.Track(3, time.Time{}) // cleared (reconnected)
	ts.Track(4, t0.Add(time.Minute))
	ts.Forget(4) // deleted
	c.Advance(time.Minute)
	if len(fired) != 1 || !fired[1].Equal(t0.Add(time.Minute)) {
		t.Fatalf("after 1m: %v", fired)
	}
	c.Advance(time.Minute)
	if len(fired) != 2 || !fired[2].Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after 2m: %v", fired)
	}
	if c.Pending() != 0 {
		t.Fatalf("%d timers still armed", c.Pending())
	}
}
