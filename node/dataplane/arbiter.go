package dataplane

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/meshinit/meshinit/meshapi"
)

// handshakeArbiter makes the node with the larger public key the only one
// that starts handshakes between two mesh nodes.
//
// WHY: both nodes learn of each other at the same moment (the coordinator
// sends both deltas at once) and, with persistent keepalive or an app
// dialing at once, both send a handshake initiation at once. When two
// initiations cross, wireguard-go answers the other's, which discards its
// own pending one, so both answers are rejected as invalid; worse, its
// parallel handshake workers may process the peer's initiation and
// response at the same time and derive a session the two sides disagree
// on. Nothing flows until the 5-15 s retry. Filtering by timing cannot fix
// this: an initiation may sit in the device's queue and be processed only
// after the peer was added.
//
// The rule: between two nodes the larger key initiates; the smaller one
// never sends an initiation to it. When the smaller side's device wants a
// handshake, its initiation is replaced on the way out by a handshake
// request: an authenticated path message (pathmsg.go), so nobody but the
// peer can make one, and one that is replayed or forged changes nothing.
// The larger side answers a request from a peer it knows with an
// initiation: its outstanding one sent again, if no answer to it has come
// (this covers the peer having dropped it because it did not know us
// yet), or else a fresh one, over the path the bind chooses for that peer
// (never an address taken from the request). So one side only ever
// consumes initiations and the other only responses.
type handshakeArbiter struct {
	self meshapi.Key
	seen recentHandshakes

	mu    sync.Mutex
	peers map[meshapi.Key]*arbiterPeer
	byIdx map[uint32]*sentInitiation // our pending initiations by sender index

	now   func() time.Time
	after func(time.Duration, func())
	// initiate makes the device start a fresh handshake with a peer that
	// asked. It is called on its own goroutine.
	initiate func(k meshapi.Key)
	// resend sends an initiation again through the bind.
	resend func(msg []byte, ep conn.Endpoint)
}

// arbiterPeer is what the arbiter keeps per peer.
type arbiterPeer struct {
	// weInitiate: the peer's key is smaller than ours.
	weInitiate bool
	// starting: the device knows the peer but has not started it yet.
	// Starting resets wireguard-go's handshake rate limit and sends an
	// initiation, so a fresh one asked for now would be followed at once by
	// another with the same coarse timestamp, which the peer would reject
	// as a replay. Meanwhile requests only get the start's initiation sent
	// again, once it has gone out.
	starting bool
	pending  *sentInitiation // our latest initiation to the peer
	// askedEarly: a request came while the peer was starting and before
	// our first initiation; that initiation is then sent again once
	// (the requester knew us when it asked, so the copy gets through even
	// if the first one came too early for it).
	askedEarly bool
	asked      time.Time // when a request last made us start a fresh one
	// unforgotten: the peer is new and the memory of recent handshake
	// messages may still hold one of its that the device rejected for not
	// knowing it yet (see deviceKnowsLocked).
	unforgotten bool
	// initiations counts the fresh initiations sent to the peer. A crossing
	// resolved in the first round trip takes exactly one; tests read it to
	// tell that from a handshake that needed wireguard-go's retry, without
	// timing it.
	initiations int
}

// sentInitiation is an initiation of ours, kept to be sent again.
type sentInitiation struct {
	at       time.Time
	msg      []byte
	to       conn.Endpoint
	index    uint32 // our sender index in it; the response names it
	answered bool
	resends  int
}

// maxResends bounds how often one initiation is sent again on request.
const maxResends = 3

// resendDelay is how long a request waits before our unanswered initiation
// is sent again: an answer already on its way (the peer may have sent its
// request just before processing our initiation) gets this long to arrive,
// so the peer is not handed a second copy of what it is processing.
const resendDelay = 30 * time.Millisecond

func newHandshakeArbiter(self meshapi.Key) *handshakeArbiter {
	return &handshakeArbiter{
		self:     self,
		peers:    make(map[meshapi.Key]*arbiterPeer),
		byIdx:    make(map[uint32]*sentInitiation),
		now:      time.Now,
		after:    func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		initiate: func(meshapi.Key) {},
		resend:   func([]byte, conn.Endpoint) {},
	}
}

// setPeer records a peer. A new peer counts as starting until started is
// called.
func (a *handshakeArbiter) setPeer(k meshapi.Key, isNew bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.peers[k]
	if p == nil {
		p = &arbiterPeer{weInitiate: bytes.Compare(a.self[:], k[:]) > 0}
		a.peers[k] = p
	}
	if isNew {
		p.starting = true
		p.unforgotten = true
		a.setPendingLocked(p, nil)
	}
}

// started marks a new peer as started by the device.
func (a *handshakeArbiter) started(k meshapi.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.peers[k]; p != nil {
		p.starting = false
		a.deviceKnowsLocked(p)
		if p.askedEarly && p.pending == nil {
			// Asked while starting and nothing sent since: start now
			// rather than leave the peer waiting for its retry.
			p.askedEarly = false
			p.asked = a.now()
			go a.initiate(k)
		}
	}
}

// deviceKnowsLocked is called once the device is known to hold peer p: at
// the first initiation it sends to p, or when UpsertPeer is done, whichever
// comes first. An initiation from p that came before the device knew p was
// rejected for that, so a copy of it must now get through: the memory of
// recent handshake messages is cleared, once per new peer.
//
// WHY at the first send and not only when UpsertPeer is done: when we are
// the smaller key that first send is a handshake request, and the peer
// answers it by sending its rejected initiation again 30 ms later. Forgotten
// only after UpsertPeer returned, a late-scheduled goroutine let that copy
// arrive first and be dropped as a repeat, and nothing moved until
// wireguard-go's 5 s retry. Clearing before the request goes out orders the
// two.
func (a *handshakeArbiter) deviceKnowsLocked(p *arbiterPeer) {
	if p.unforgotten {
		p.unforgotten = false
		a.seen.forget()
	}
}

func (a *handshakeArbiter) removePeer(k meshapi.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.peers[k]; p != nil {
		a.setPendingLocked(p, nil)
	}
	delete(a.peers, k)
}

// outgoingInitiation looks at an initiation the device sends to peer k
// (at ep). It reports whether a handshake request must be sent instead
// (the peer has the larger key).
func (a *handshakeArbiter) outgoingInitiation(msg []byte, k meshapi.Key, ep conn.Endpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.peers[k]
	if p == nil {
		return false // not a mesh peer we know: leave it alone
	}
	a.deviceKnowsLocked(p) // the device sends to p, so it holds p
	if !p.weInitiate {
		return true
	}
	p.initiations++
	si := &sentInitiation{
		at:    a.now(),
		msg:   append([]byte(nil), msg...),
		to:    ep,
		index: binary.LittleEndian.Uint32(msg[4:8]),
	}
	a.setPendingLocked(p, si)
	if p.askedEarly {
		p.askedEarly = false
		si.resends++
		a.after(resendDelay, func() { a.resendIfUnanswered(si) })
	}
	return false
}

func (a *handshakeArbiter) setPendingLocked(p *arbiterPeer, s *sentInitiation) {
	if old := p.pending; old != nil {
		delete(a.byIdx, old.index)
	}
	p.pending = s
	if s != nil {
		a.byIdx[s.index] = s
	}
}

// incomingResponse notes that a response to one of our initiations came.
func (a *handshakeArbiter) incomingResponse(msg []byte) {
	receiver := binary.LittleEndian.Uint32(msg[8:12])
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.byIdx[receiver]; s != nil {
		s.answered = true
	}
}

// incomingRequest handles an authenticated handshake request from peer k.
func (a *handshakeArbiter) incomingRequest(k meshapi.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.peers[k]
	if p == nil || !p.weInitiate {
		return // a stranger, or a peer that should not ask
	}
	if p.starting && p.pending == nil {
		p.askedEarly = true // answered when our first initiation goes out
		return
	}
	now := a.now()
	if s := p.pending; s != nil && now.Sub(s.at) <= device.RekeyTimeout {
		// Ours is still current (the device would not make a new one
		// within 5 s of it anyway): send it again unless it is answered.
		if !s.answered && s.resends < maxResends {
			s.resends++
			a.after(resendDelay, func() { a.resendIfUnanswered(s) })
		}
		return
	}
	if p.starting || now.Sub(p.asked) < time.Second {
		return // the device allows one fresh initiation per 5 s anyway
	}
	p.asked = now
	go a.initiate(k)
}

func (a *handshakeArbiter) resendIfUnanswered(s *sentInitiation) {
	a.mu.Lock()
	answered := s.answered
	a.mu.Unlock()
	if !answered {
		a.resend(s.msg, s.to)
	}
}

// acceptHandshake looks at a received WireGuard packet: a handshake
// message seen lately is a repeat and is refused (see recentHandshakes); a
// response is noted. Data packets pay one length comparison.
func (a *handshakeArbiter) acceptHandshake(p []byte) bool {
	if !isHandshake(p) {
		return true
	}
	if a.seen.repeated(p) {
		return false
	}
	if len(p) == device.MessageResponseSize {
		a.incomingResponse(p)
	}
	return true
}

// isHandshake reports whether p is a handshake initiation or response.
func isHandshake(p []byte) bool {
	switch len(p) {
	case device.MessageInitiationSize:
		return binary.LittleEndian.Uint32(p) == device.MessageInitiationType
	case device.MessageResponseSize:
		return binary.LittleEndian.Uint32(p) == device.MessageResponseType
	}
	return false
}

// isInitiation reports whether a send batch is one handshake initiation.
func isInitiation(bufs [][]byte) bool {
	return len(bufs) == 1 && len(bufs[0]) == device.MessageInitiationSize &&
		binary.LittleEndian.Uint32(bufs[0]) == device.MessageInitiationType
}
