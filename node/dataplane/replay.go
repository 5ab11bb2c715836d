package dataplane

import (
	"sync"
	"time"
)

// recentHandshakes remembers the handshake messages received lately.
//
// WHY: the same initiation can arrive twice within a moment (sprayed to two
// candidates that reach the same host, sent again on request, duplicated by
// the network). wireguard-go's replay check and its state update are not
// atomic across its parallel handshake workers: two copies processed at
// once both pass, the peer gets two responses, and the two sides end up
// with different sessions until the 15 s retry. A copy is a replay by
// definition, so dropping it here is what the device means to do anyway —
// unless the first copy came before the device knew the sender and was
// rejected for that; so a new peer makes it forget what it saw
// (handshakeArbiter.deviceKnowsLocked).
// A message is recognised by its mac1, a MAC over all of it.
type recentHandshakes struct {
	mu   sync.Mutex
	ring [64]struct {
		mac1 [16]byte
		at   time.Time
	}
	next int
}

// handshakeMemory is how long a handshake message counts as recent: longer
// than any resend of it (resends stop after device.RekeyTimeout).
const handshakeMemory = 10 * time.Second

// forget clears the memory.
func (r *recentHandshakes) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.ring {
		r.ring[i].at = time.Time{}
	}
}

// repeated reports whether handshake message p was seen lately, and
// remembers it if not.
func (r *recentHandshakes) repeated(p []byte) bool {
	var mac1 [16]byte
	copy(mac1[:], p[len(p)-32:len(p)-16])
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.ring {
		if r.ring[i].mac1 == mac1 && now.Sub(r.ring[i].at) < handshakeMemory {
			return true
		}
	}
	r.ring[r.next].mac1, r.ring[r.next].at = mac1, now
	r.next = (r.next + 1) % len(r.ring)
	return false
}
