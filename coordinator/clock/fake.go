package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a Clock that moves only when told to. Its timers fire during
// Advance, in deadline order, each with Now() equal to its own deadline, in
// the goroutine that called Advance: when Advance returns, every function
// that was due has run to completion. Timers armed by those functions fire
// in the same Advance if they fall due within it.
//
// It is for tests: a reconnect grace of five seconds is checked exactly, in
// no time.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    uint64 // orders timers with the same deadline by creation
}

// NewFake returns a Fake clock showing start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc implements Clock. A function due at once (d <= 0) still waits
// for the next Advance (or Advance(0)): Fake never runs code behind the
// test's back.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &fakeTimer{clock: f, at: f.now.Add(max(d, 0)), seq: f.seq, fn: fn}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.AdvanceTo(target)
}

// AdvanceTo moves the clock forward to t (never back), firing every timer
// due by then.
func (f *Fake) AdvanceTo(t time.Time) {
	for {
		f.mu.Lock()
		next := f.nextDueLocked(t)
		if next == nil {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		f.timers = slices.DeleteFunc(f.timers, func(x *fakeTimer) bool { return x == next })
		if next.at.After(f.now) {
			f.now = next.at
		}
		f.mu.Unlock()
		next.fn()
	}
}

// Pending returns how many timers are armed and not yet fired.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

func (f *Fake) nextDueLocked(by time.Time) *fakeTimer {
	var next *fakeTimer
	for _, t := range f.timers {
		if t.at.After(by) {
			continue
		}
		if next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.seq < next.seq) {
			next = t
		}
	}
	return next
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	seq   uint64
	fn    func()
}

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.timers)
	f.timers = slices.DeleteFunc(f.timers, func(x *fakeTimer) bool { return x == t })
	return len(f.timers) < n
}
