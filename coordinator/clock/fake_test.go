package clock_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeFiresInDeadlineOrderAtTheirDeadlines(t *testing.T) {
	c := clock.NewFake(start)
	var got []string
	record := func(name string) func() {
		return func() { got = append(got, fmt.Sprintf("%s@%v", name, c.Now().Sub(start))) }
	}
	c.AfterFunc(3*time.Second, record("c"))
	c.AfterFunc(time.Second, record("a"))
	stopped := c.AfterFunc(2*time.Second, record("never"))
	c.AfterFunc(time.Second, record("a2")) // same deadline: creation order
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once, then false")
	}
	// A timer armed by a firing one fires in the same Advance when due.
	c.AfterFunc(1500*time.Millisecond, func() {
		got = append(got, fmt.Sprintf("b@%v", c.Now().Sub(start)))
		c.AfterFunc(time.Second, record("nested"))
	})
	c.Advance(2600 * time.Millisecond)
	want := "[a@1s a2@1s b@1.5s nested@2.5s]"
	if fmt.Sprint(got) != want {
		t.Fatalf("fired %v, want %s", got, want)
	}
	if now := c.Now().Sub(start); now != 2600*time.Millisecond {
		t.Fatalf("clock at %v after Advance, want 2.6s", now)
	}
	if c.Pending() != 1 {
		t.Fatalf("%d timers pending, want 1 (c)", c.Pending())
	}
	c.Advance(time.Second)
	if len(got) != 5 || got[4] != "c@3s" {
		t.Fatalf("fired %v", got)
	}
}

func TestFakeZeroDelayWaitsForAdvance(t *testing.T) {
	c := clock.NewFake(start)
	fired := false
	c.AfterFunc(0, func() { fired = true })
	if fired {
		t.Fatal("a Fake ran a function outside Advance")
	}
	c.Advance(0)
	if !fired || !c.Now().Equal(start) {
		t.Fatalf("after Advance(0): fired %v, now %v", fired, c.Now())
	}
}

func TestRepeatUntilStopped(t *testing.T) {
	c := clock.NewFake(start)
	var at []time.Duration
	stop := clock.Repeat(c, 0, time.Minute, func() { at = append(at, c.Now().Sub(start)) })
	c.Advance(150 * time.Second)
	stop()
	c.Advance(time.Hour)
	if fmt.Sprint(at) != "[0s 1m0s 2m0s]" {
		t.Fatalf("calls at %v, want at 0s, 1m, 2m and none after stop", at)
	}
}
