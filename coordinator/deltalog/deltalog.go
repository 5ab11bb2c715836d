// Package deltalog is the fan-out core of the coordinator: an append-only
// ring of encoded stream lines with contiguous versions, read concurrently
// by any number of followers, each at its own cursor.
//
// A change is encoded once and appended once; every follower writes the
// same bytes to its own connection. Appending is O(1) and never waits for
// a reader, so a slow reader cannot hold up the coordinator: it just falls
// behind and, once its cursor leaves the ring, is told to start over
// (Read reports ok=false) and gets a full snapshot instead.
//
// Readers take no lock: slots are atomic pointers checked by version, so
// 10 000 readers waking at once never queue behind the appender (a
// reader/writer mutex here made every Append wait for a convoy of readers,
// and the coordinator's state lock with it).
package deltalog

import (
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one change as it goes on the wire. Entries are immutable once
// appended: readers share their byte slices.
type Entry struct {
	// Version is the entry's place in the log: one more than the entry before.
	Version uint64
	// Subject is the node the change is about (0: no node in particular).
	Subject uint64
	// Data is the line every follower except the subject writes.
	Data []byte
	// Self is the line the subject writes instead; nil means the subject
	// skips the entry.
	Self []byte
	// Audience labels who may read Data (opaque to the log: the reader
	// decides; the coordinator puts the subject's tag class here).
	Audience uint32
	// Payload is anything else a reader needs to write the entry (opaque to
	// the log: the coordinator's per-reader policy changes).
	Payload any
}

// Log is a bounded ring of entries with one appender and any number of
// concurrent readers. The zero value is not usable; call New.
type Log struct {
	slots []atomic.Pointer[Entry]
	base  uint64        // version before the first entry
	last  atomic.Uint64 // version of the newest entry (base when none)

	// Readers are split into shards, each with its own wake channel, and a
	// pacer wakes one pending shard per step, round-robin, spreading one
	// round over the wake interval. So a change reaches every reader within
	// about one interval, each reader writes at most one batch per interval
	// (not one line per change), and no more than 1/shards of the readers
	// are runnable at once: 10 000 goroutines woken together would sit in
	// front of every other goroutine in the scheduler's queue (API calls
	// waited hundreds of milliseconds behind them).
	wake     []atomic.Pointer[chan struct{}]
	interval atomic.Int64 // time.Duration of one round; 0 wakes every shard on every Append
	mu       sync.Mutex   // appender and pacer only
	pending  []bool       // shard has appends it was not woken for
	pacing   bool         // a pacer step is scheduled
	next     int          // round-robin position
}

// New returns an empty log holding at most capacity entries, whose first
// entry will have version base+1, with readers in `shards` wake groups.
func New(capacity int, base uint64, shards int) *Log {
	if capacity < 1 {
		capacity = 1
	}
	if shards < 1 {
		shards = 1
	}
	l := &Log{slots: make([]atomic.Pointer[Entry], capacity), base: base,
		wake: make([]atomic.Pointer[chan struct{}], shards), pending: make([]bool, shards)}
	l.last.Store(base)
	for i := range l.wake {
		c := make(chan struct{})
		l.wake[i].Store(&c)
	}
	return l
}

// Shards returns the number of wake groups.
func (l *Log) Shards() int { return len(l.wake) }

// Last returns the version of the newest entry (the base if none).
func (l *Log) Last() uint64 { return l.last.Load() }

// Next returns the version the next Append must carry.
func (l *Log) Next() uint64 { return l.Last() + 1 }

// Oldest returns the version of the oldest entry held (Last()+1 when empty).
func (l *Log) Oldest() uint64 {
	last := l.last.Load()
	if n := uint64(len(l.slots)); last-l.base > n {
		return last - n + 1
	}
	return l.base + 1
}

// Append adds e, whose Version must be Last()+1 (it panics otherwise: the
// caller serialises versions, a gap is a bug), dropping the oldest entry
// when full, and has every reader woken: the first shard at once, the
// others over the wake interval. Appends must not run concurrently.
func (l *Log) Append(e Entry) {
	if e.Version != l.last.Load()+1 {
		panic("deltalog: version out of order")
	}
	l.slots[e.Version%uint64(len(l.slots))].Store(&e)
	l.last.Store(e.Version)
	l.mu.Lock()
	for i := range l.pending {
		l.pending[i] = true
	}
	if !l.pacing {
		l.stepLocked()
	}
	l.mu.Unlock()
}

// SetWakeInterval sets how long one round of wake-ups over all shards takes.
func (l *Log) SetWakeInterval(d time.Duration) { l.interval.Store(int64(d)) }

// stepLocked wakes the next pending shard (every pending shard when the
// interval is zero) and schedules the next step while any shard is pending.
func (l *Log) stepLocked() {
	interval := time.Duration(l.interval.Load())
	n := len(l.wake)
	if interval <= 0 {
		for i := range l.pending {
			if l.pending[i] {
				l.wakeLocked(i)
			}
		}
		l.pacing = false
		return
	}
	for k := 0; k < n; k++ {
		i := (l.next + k) % n
		if l.pending[i] {
			l.wakeLocked(i)
			l.next = (i + 1) % n
			l.pacing = true
			time.AfterFunc(interval/time.Duration(n), l.step)
			return
		}
	}
	l.pacing = false
}

func (l *Log) step() {
	l.mu.Lock()
	l.stepLocked()
	l.mu.Unlock()
}

func (l *Log) wakeLocked(shard int) {
	l.pending[shard] = false
	c := make(chan struct{})
	old := l.wake[shard].Swap(&c)
	close(*old)
}

// Read appends to buf the entries after version `after`, oldest first, at
// most cap(buf)-len(buf) of them (at least one if buf has no room), and
// returns them with a channel that a later wake-up of the reader's shard
// (any number; it is taken modulo Shards) closes. With no
// new entries it returns none, and the caller waits on the channel.
// ok is false when `after` is no longer held (the reader fell behind) or
// is newer than the log (a cursor from another log): the reader must
// resynchronise from a snapshot.
func (l *Log) Read(after uint64, buf []Entry, shard int) (entries []Entry, wait <-chan struct{}, ok bool) {
	// The channel is taken before the version: an Append that lands after
	// this load marks the shard pending, and its wake-up closes this
	// channel, so no wake-up is missed.
	c := *l.wake[shard%len(l.wake)].Load()
	last := l.last.Load()
	if after > last || after < l.base {
		return buf, c, false
	}
	room := cap(buf) - len(buf)
	if room < 1 {
		room = 1
	}
	start := len(buf)
	for v := after + 1; v <= last && room > 0; v++ {
		e := l.slots[v%uint64(len(l.slots))].Load()
		if e == nil || e.Version != v {
			// Overwritten by a newer entry: the reader fell behind.
			return buf[:start], c, false
		}
		buf = append(buf, *e)
		room--
	}
	return buf, c, true
}
