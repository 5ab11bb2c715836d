package relay

import (
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// Packets for a key that has no connection are held for a moment: the
// node may be connecting right now (a new node's peers learn of it from
// the coordinator at the same moment it opens its relay connection, and
// their first handshake would otherwise be lost and retried only 5 s
// later). Bounded per key, in total, and in age.
const (
	holdAge       = 2 * time.Second
	holdPerKey    = 16
	holdMaxBytes  = 4 << 20
	holdMaxKeys   = 1024
	dropHoldStale = "held_expired" // reason label for held packets never delivered
)

type heldPackets struct {
	since  time.Time
	frames [][]byte
}

// holds is guarded by Server.mu.
type holds struct {
	byKey map[meshapi.Key]*heldPackets
	bytes int
}

// hold keeps a recv frame for dst if there is room; false means drop it.
func (s *Server) hold(dst meshapi.Key, frame []byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[dst]; c != nil { // connected meanwhile
		c.enqueue(frame, false)
		return true
	}
	h := &s.held
	expired := h.expire(now)
	defer s.metrics.drop(dropHoldStale, expired)
	hp := h.byKey[dst]
	if hp == nil {
		if len(h.byKey) >= holdMaxKeys {
			return false
		}
		hp = &heldPackets{since: now}
		h.byKey[dst] = hp
	}
	if len(hp.frames) >= holdPerKey || h.bytes+len(frame) > holdMaxBytes {
		return false
	}
	hp.frames = append(hp.frames, frame)
	h.bytes += len(frame)
	return true
}

// take removes and returns what is held for k, if still fresh.
func (h *holds) take(k meshapi.Key, now time.Time) [][]byte {
	hp := h.byKey[k]
	if hp == nil {
		return nil
	}
	delete(h.byKey, k)
	for _, f := range hp.frames {
		h.bytes -= len(f)
	}
	if now.Sub(hp.since) > holdAge {
		for _, f := range hp.frames {
			putBuf(f)
		}
		return nil
	}
	return hp.frames
}

// expire drops holds older than holdAge and returns how many packets went.
func (h *holds) expire(now time.Time) int {
	n := 0
	for k, hp := range h.byKey {
		if now.Sub(hp.since) > holdAge {
			for _, f := range hp.frames {
				h.bytes -= len(f)
				putBuf(f)
			}
			n += len(hp.frames)
			delete(h.byKey, k)
		}
	}
	return n
}
