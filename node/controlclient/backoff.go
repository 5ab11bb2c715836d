package controlclient

import (
	"math/rand/v2"
	"time"
)

// Backoff yields jittered, exponentially growing delays between attempts so
// that many nodes cut off by one coordinator restart do not reconnect in
// lockstep. The zero value uses the defaults.
type Backoff struct {
	Min, Max time.Duration // defaults 50ms and 10s
	n        int
}

// Next returns the delay before the next attempt: a uniformly random value
// in [d/2, d], where d doubles per attempt from Min up to Max.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 50 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	d := lo
	for i := 0; i < b.n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts over from Min, after an attempt that worked.
func (b *Backoff) Reset() { b.n = 0 }
