package packetfilter

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// flowKey names a flow from this node's side.
type flowKey struct {
	proto         uint8
	local, remote netip.Addr
	lport, rport  uint16
}

// Idle lifetimes of tracked flows, in seconds. A TCP flow is kept long
// (replies refresh it); a table full of them evicts the stalest first.
const (
	tcpIdle  = 2 * 3600
	udpIdle  = 120
	icmpIdle = 30
)

// DefaultMaxFlows bounds the table of outbound flows.
const DefaultMaxFlows = 1 << 16

// conntrack remembers flows this node opened so that their replies pass.
type conntrack struct {
	mu    sync.RWMutex
	flows map[flowKey]*flow
	max   int
}

type flow struct {
	expires atomic.Int64 // unix seconds
	ttl     int64
}

func newConntrack(max int) *conntrack {
	return &conntrack{flows: make(map[flowKey]*flow), max: max}
}

func idleFor(proto uint8) int64 {
	switch proto {
	case protoTCP:
		return tcpIdle
	case protoUDP:
		return udpIdle
	}
	return icmpIdle
}

// track records (or refreshes) an outbound flow.
func (c *conntrack) track(k flowKey, now int64) {
	c.mu.RLock()
	f := c.flows[k]
	c.mu.RUnlock()
	if f != nil {
		f.refresh(now)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f = c.flows[k]; f != nil {
		f.refresh(now)
		return
	}
	if len(c.flows) >= c.max {
		c.evictLocked(now)
	}
	f = &flow{ttl: idleFor(k.proto)}
	f.expires.Store(now + f.ttl)
	c.flows[k] = f
}

// reply reports whether k is a live tracked flow, and refreshes it.
func (c *conntrack) reply(k flowKey, now int64) bool {
	c.mu.RLock()
	f := c.flows[k]
	c.mu.RUnlock()
	if f == nil || f.expires.Load() < now {
		return false
	}
	f.refresh(now)
	return true
}

func (f *flow) refresh(now int64) {
	if want := now + f.ttl; f.expires.Load() != want {
		f.expires.Store(want)
	}
}

// evictLocked makes room: every expired flow goes, and if none had, the
// one closest to expiry among a sample (the whole table would cost O(n)
// on every insert into a full table).
func (c *conntrack) evictLocked(now int64) {
	var victim flowKey
	var oldest int64 = 1<<63 - 1
	sampled := 0
	for k, f := range c.flows {
		e := f.expires.Load()
		if e < now {
			delete(c.flows, k)
			continue
		}
		if sampled < 64 && e < oldest {
			victim, oldest = k, e
		}
		sampled++
		if sampled >= 64 && len(c.flows) < c.max {
			return
		}
	}
	if len(c.flows) >= c.max {
		delete(c.flows, victim)
	}
}

func (c *conntrack) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.flows)
}
