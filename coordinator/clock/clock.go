// Package clock is the coordinator's sense of time for its lifecycle rules:
// the time a change happened, the reconnect grace, GC deadlines, reclaim
// windows, heartbeats and event retention. Everything that decides *when*
// a node changes state reads this clock, so tests drive it with a Fake and
// check the rules exactly, in microseconds of real time.
//
// I/O timeouts (stream write deadlines, how long a request waits for its
// commit, the store's retry pacing) are not lifecycle rules: they stay on
// the real clock.
package clock

import "time"

// Clock tells the time and runs functions later.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed (at once
	// for d <= 0) unless the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started, and reports whether it
	// did so.
	Stop() bool
}

// Real is the system clock: time.Now and time.AfterFunc.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
