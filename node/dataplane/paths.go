package dataplane

import (
	"net/netip"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// Path timers. An idle peer costs nothing: probes and heartbeats run only
// while packets go to it.
const (
	// activeTimeout: a peer counts as carrying traffic while a packet went
	// to it within this long (WireGuard's own keepalives and rekeys keep
	// an active session sending now and then).
	activeTimeout = 45 * time.Second
	// probeInterval: how often an active peer without a trusted direct
	// path gets a round of pings to every candidate and a call-me-maybe.
	probeInterval = 5 * time.Second
	// heartbeatInterval: how often the direct path in use is pinged.
	heartbeatInterval = 3 * time.Second
	// trustDuration: a direct path is used for this long after its last
	// pong; two missed heartbeats in a row send traffic back to the relay.
	trustDuration = 6500 * time.Millisecond
	// punchBackInterval bounds the pings sent back to a pinging address
	// and the rounds answering a call-me-maybe.
	punchBackInterval = time.Second
	// pingTimeout: an unanswered ping is forgotten after this long.
	pingTimeout = 5 * time.Second
	// maxAddrsPerPeer bounds the source addresses remembered for one peer.
	maxAddrsPerPeer = 32
)

// Route kinds.
const (
	PathDirect     = "direct"     // UDP to a validated endpoint
	PathRelay      = "relay"      // through the coordinator's relay
	PathCandidates = "candidates" // no relay: UDP copies to every candidate endpoint
	PathNone       = "none"       // no way to send
)

// peerPath is what the bind knows about reaching one peer.
type peerPath struct {
	key  meshapi.Key
	ep   *peerEndpoint
	pair [32]byte // MAC key for path messages
	ok   bool     // pair is usable (the peer's key is a valid point)

	mu          sync.Mutex
	mapAddrs    []netip.AddrPort // candidates from the coordinator's map
	theirAddrs  []netip.AddrPort // candidates from the peer's last call-me-maybe
	seenAddrs   []netip.AddrPort // source addresses authenticated for it (in bind.byAddr)
	best        netip.AddrPort   // the validated direct path, if any
	bestRTT     time.Duration
	trustUntil  time.Time
	lastSend    time.Time
	lastProbe   time.Time
	lastBeat    time.Time
	lastAnswer  time.Time // last call-me-maybe answered
	pings       map[[txIDLen]byte]sentPing
	punched     map[netip.AddrPort]time.Time // last ping back to an address
	fresh       freshness
	relayGone   bool // the relay said the peer is not connected
	lostDirect  bool // a direct path was in use and stopped answering
	directSince time.Time
}

type sentPing struct {
	to netip.AddrPort
	at time.Time
}

// peerEndpoint is the WireGuard endpoint of a peer: the peer itself, by
// public key. Which path its packets take is the bind's choice, so
// WireGuard's roaming (setting the endpoint from a packet's source) never
// changes it: every packet from the peer carries this same endpoint.
type peerEndpoint struct{ path *peerPath }

func (e *peerEndpoint) ClearSrc()           {}
func (e *peerEndpoint) SrcToString() string { return "" }
func (e *peerEndpoint) DstToString() string { return e.path.key.String() }
func (e *peerEndpoint) DstToBytes() []byte  { return e.path.key[:] }
func (e *peerEndpoint) DstIP() netip.Addr   { return netip.Addr{} }
func (e *peerEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

// route is where the next packets for a peer go.
type route struct {
	kind  string
	addr  netip.AddrPort   // direct
	addrs []netip.AddrPort // candidates
}

// Relay availability, as routeLocked needs it.
type relayState int

const (
	relayNone       relayState = iota // not configured
	relayConnecting                   // configured, not connected now
	relayUp                           // connected
)

// routeLocked picks the path: a direct path while it is trusted, else the
// relay while connected, else copies to every candidate, else the relay's
// backlog while it connects.
func (p *peerPath) routeLocked(now time.Time, relay relayState) route {
	switch {
	case p.best.IsValid() && now.Before(p.trustUntil):
		return route{kind: PathDirect, addr: p.best}
	case relay == relayUp:
		return route{kind: PathRelay}
	}
	if c := p.candidatesLocked(); len(c) > 0 {
		return route{kind: PathCandidates, addrs: c}
	}
	if relay == relayConnecting {
		return route{kind: PathRelay}
	}
	return route{kind: PathNone}
}

// candidatesLocked are the addresses to probe (and, without a relay, to
// send to): the map's, the peer's own from call-me-maybe, and those its
// authenticated path messages came from.
func (p *peerPath) candidatesLocked() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(p.mapAddrs)+len(p.theirAddrs)+len(p.seenAddrs))
	out = append(out, p.mapAddrs...)
	for _, list := range [][]netip.AddrPort{p.theirAddrs, p.seenAddrs} {
		for _, a := range list {
			if !containsAddr(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) > 2*maxCandidates {
		out = out[:2*maxCandidates]
	}
	return out
}

func containsAddr(list []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// activeLocked reports whether packets went to the peer lately.
func (p *peerPath) activeLocked(now time.Time) bool {
	return !p.lastSend.IsZero() && now.Sub(p.lastSend) < activeTimeout
}

// pongLocked records a pong for ping ping from addr, received at now: the
// direct path to addr works. It reports whether the path in use changed.
func (p *peerPath) pongLocked(sp sentPing, now time.Time) (changed bool) {
	rtt := now.Sub(sp.at)
	trusted := p.best.IsValid() && now.Before(p.trustUntil)
	switch {
	case !trusted, sp.to == p.best:
		changed = p.best != sp.to || !trusted
		p.best, p.bestRTT = sp.to, rtt
	case rtt < p.bestRTT*7/10: // clearly better: a LAN address over a NAT's, say
		changed = true
		p.best, p.bestRTT = sp.to, rtt
	default:
		return false
	}
	p.trustUntil = now.Add(trustDuration)
	if changed {
		p.directSince = now
		p.lostDirect = false
	}
	return changed
}

// PathStatus is how packets reach a peer, and why.
type PathStatus struct {
	// Kind is PathDirect, PathRelay, PathCandidates or PathNone.
	Kind string
	// Endpoint is the peer's UDP address on a direct path.
	Endpoint netip.AddrPort
	// Reason says why this path, in words.
	Reason string
	// RTT is the last probe round trip on the direct path.
	RTT time.Duration
}

// statusLocked describes the current path.
func (p *peerPath) statusLocked(now time.Time, relay relayState) PathStatus {
	r := p.routeLocked(now, relay)
	s := PathStatus{Kind: r.kind}
	switch r.kind {
	case PathDirect:
		s.Endpoint, s.RTT = r.addr, p.bestRTT
		s.Reason = "probe answered on the direct path"
	case PathRelay:
		switch {
		case relay != relayUp:
			s.Reason = "the relay connection is not up yet: packets wait for it"
		case p.relayGone:
			s.Reason = "the peer has no relay connection; probing its endpoints"
		case p.lostDirect:
			s.Reason = "the direct path stopped answering probes"
		case !p.activeLocked(now):
			s.Reason = "idle: no traffic, so no direct path is probed"
		case len(p.candidatesLocked()) == 0:
			s.Reason = "no candidate endpoints known yet"
		default:
			s.Reason = "no probe to a candidate endpoint answered yet"
		}
	case PathCandidates:
		s.Reason = "no relay connection: sending to every candidate endpoint"
	case PathNone:
		s.Reason = "no relay connection and no endpoint known"
	}
	return s
}
