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

import (
	"sync"
	"time"
)

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

// Repeat calls f after first and then every `every` until the returned stop
// is called. Calls never overlap, and stop waits for a call in progress, so
// after stop returns f is not running and will not run again.
func Repeat(c Clock, first, every time.Duration, f func()) (stop func()) {
	r := &repeater{c: c, every: every, f: f}
	r.mu.Lock()
	r.t = c.AfterFunc(first, r.fire)
	r.mu.Unlock()
	return r.stop
}

type repeater struct {
	c       Clock
	every   time.Duration
	f       func()
	mu      sync.Mutex
	t       Timer
	stopped bool
	running sync.WaitGroup
}

func (r *repeater) fire() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.running.Add(1)
	r.mu.Unlock()
	r.f()
	r.mu.Lock()
	if !r.stopped {
		r.t = r.c.AfterFunc(r.every, r.fire)
	}
	r.mu.Unlock()
	r.running.Done()
}

func (r *repeater) stop() {
	r.mu.Lock()
	r.stopped = true
	r.t.Stop()
	r.mu.Unlock()
	r.running.Wait()
}
