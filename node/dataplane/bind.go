package dataplane

import (
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/meshinit/meshinit/internal/stun"
	"github.com/meshinit/meshinit/meshapi"
)

// meshBind is the device's conn.Bind. It reaches each peer by public key
// over the best path it has: a direct UDP path once an authenticated probe
// validated it, else the coordinator's relay, else (no relay) copies to
// every candidate endpoint. WireGuard sees one endpoint per peer (see
// peerEndpoint) and never chooses a path itself.
//
// UDP goes through wireguard-go's batching StdNetBind (sendmmsg/recvmmsg
// with GSO/GRO). A datagram from an address that is not known to belong to
// a peer (a map candidate, or a source an authenticated path message came
// from) is dropped before WireGuard sees it; path messages and STUN
// answers are handled here and never reach WireGuard.
//
// Crossing handshakes are resolved by handshakeArbiter; its handshake
// requests travel as authenticated path messages.
type meshBind struct {
	udp     conn.Bind
	self    meshapi.Key
	priv    *ecdh.PrivateKey
	log     *slog.Logger
	arbiter *handshakeArbiter
	relay   *relayClient // nil: no relay configured
	// advertise lists our own candidate endpoints (for call-me-maybe).
	advertise func() []netip.AddrPort
	now       func() time.Time

	port atomic.Uint32 // the UDP port actually bound

	mu        sync.RWMutex
	peers     map[meshapi.Key]*peerPath
	byAddr    map[netip.AddrPort]*peerPath
	udpEPs    map[netip.AddrPort]conn.Endpoint
	reflexive netip.AddrPort // our address as STUN or a peer's pong saw it
	stunTx    map[stun.TxID]time.Time
	lastSTUN  time.Time

	stop     chan struct{}
	stopOnce sync.Once

	unknownSource atomic.Uint64 // datagrams dropped: source belongs to no peer
	badPathMsg    atomic.Uint64 // path messages rejected (MAC, replay, stranger)
}

func newMeshBind(inner conn.Bind, self meshapi.Key, priv *ecdh.PrivateKey, arbiter *handshakeArbiter, log *slog.Logger) *meshBind {
	b := &meshBind{
		udp: inner, self: self, priv: priv, log: log, arbiter: arbiter,
		now:    time.Now,
		peers:  map[meshapi.Key]*peerPath{},
		byAddr: map[netip.AddrPort]*peerPath{},
		udpEPs: map[netip.AddrPort]conn.Endpoint{},
		stunTx: map[stun.TxID]time.Time{},
		stop:   make(chan struct{}),
	}
	arbiter.resend = func(msg []byte, ep conn.Endpoint) {
		b.sendData([][]byte{msg}, ep) // best effort: the peer asks again
	}
	return b
}

// shutdown stops the prober and the relay (the device is closing).
func (b *meshBind) shutdown() {
	b.stopOnce.Do(func() {
		close(b.stop)
		if b.relay != nil {
			b.relay.close()
		}
	})
}

// setPeer records peer k with its candidate endpoints from the map.
func (b *meshBind) setPeer(k meshapi.Key, endpoints []netip.AddrPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[k]
	if p == nil {
		p = &peerPath{key: k, pings: map[[txIDLen]byte]sentPing{}, punched: map[netip.AddrPort]time.Time{}}
		p.ep = &peerEndpoint{path: p}
		if pk, err := pairKey(b.priv, k); err == nil {
			p.pair, p.ok = pk, true
		}
		b.peers[k] = p
	}
	p.mu.Lock()
	for _, a := range p.mapAddrs {
		if b.byAddr[a] == p && !containsAddr(p.seenAddrs, a) {
			delete(b.byAddr, a)
		}
	}
	p.mapAddrs = append([]netip.AddrPort(nil), endpoints...)
	p.mu.Unlock()
	for _, a := range endpoints {
		b.byAddr[a] = p
	}
}

func (b *meshBind) removePeer(k meshapi.Key) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[k]
	if p == nil {
		return
	}
	delete(b.peers, k)
	for a, q := range b.byAddr {
		if q == p {
			delete(b.byAddr, a)
		}
	}
}

func (b *meshBind) peer(k meshapi.Key) *peerPath {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.peers[k]
}

// Open implements conn.Bind: the UDP socket's receive functions, filtered,
// and the relay's.
func (b *meshBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.udp.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.port.Store(uint32(actual))
	for i, fn := range fns {
		fns[i] = b.receiveUDP(fn)
	}
	if b.relay != nil {
		fns = append(fns, b.relay.receiveFunc(b))
	}
	return fns, actual, nil
}

// Close implements conn.Bind.
func (b *meshBind) Close() error {
	if b.relay != nil {
		b.relay.closeReceive()
	}
	return b.udp.Close()
}

func (b *meshBind) SetMark(mark uint32) error { return b.udp.SetMark(mark) }
func (b *meshBind) BatchSize() int            { return b.udp.BatchSize() }

// ParseEndpoint implements conn.Bind: the device's endpoint of a peer is
// its public key in hex (see Device.UpsertPeer).
func (b *meshBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	var k meshapi.Key
	if len(s) != hex.EncodedLen(len(k)) {
		return nil, fmt.Errorf("endpoint %q: want a peer's public key in hex", s)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", s, err)
	}
	p := b.peer(k)
	if p == nil {
		return nil, fmt.Errorf("endpoint %v: peer not known to the bind", k)
	}
	return p.ep, nil
}

// Send implements conn.Bind: packets for a peer go over its current path.
// An initiation the arbiter holds back is replaced by a handshake request.
func (b *meshBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	pe, ok := ep.(*peerEndpoint)
	if !ok {
		return b.udp.Send(bufs, ep)
	}
	p := pe.path
	r := b.noteSend(p)
	if isInitiation(bufs) && b.arbiter.outgoingInitiation(bufs[0], p.key, ep) {
		return b.sendPathMsg(p, &pathMsg{typ: msgHandshakeRequest, ts: b.now().UnixMilli()}, netip.AddrPort{})
	}
	return b.sendRoute(p, r, bufs)
}

// sendData sends WireGuard packets to a peer over its route.
func (b *meshBind) sendData(bufs [][]byte, ep conn.Endpoint) error {
	p := ep.(*peerEndpoint).path
	return b.sendRoute(p, b.noteSend(p), bufs)
}

// noteSend marks p as carrying traffic and returns its route. The first
// packet after idling probes first, so that the peer knows our address
// (from the authenticated ping) by the time the packet comes.
func (b *meshBind) noteSend(p *peerPath) route {
	now := b.now()
	p.mu.Lock()
	wasIdle := !p.activeLocked(now)
	p.lastSend = now
	p.mu.Unlock()
	if wasIdle {
		b.probePeer(p, now)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routeLocked(now, b.relayState())
}

func (b *meshBind) sendRoute(p *peerPath, r route, bufs [][]byte) error {
	switch r.kind {
	case PathDirect:
		return b.sendUDP(bufs, r.addr)
	case PathRelay:
		return b.relay.send(p.key, bufs)
	case PathCandidates:
		var errs []error
		for _, a := range r.addrs {
			if err := b.sendUDP(bufs, a); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == len(r.addrs) {
			return errors.Join(errs...)
		}
		return nil
	}
	return fmt.Errorf("no path to peer %v: no relay connection and no endpoint", p.key)
}

func (b *meshBind) relayUp() bool { return b.relayState() == relayUp }

func (b *meshBind) relayState() relayState {
	switch {
	case b.relay == nil:
		return relayNone
	case b.relay.up():
		return relayUp
	}
	return relayConnecting
}

// sendUDP sends to one address from the WireGuard socket.
func (b *meshBind) sendUDP(bufs [][]byte, to netip.AddrPort) error {
	ep, err := b.udpEndpoint(to)
	if err != nil {
		return err
	}
	return b.udp.Send(bufs, ep)
}

func (b *meshBind) udpEndpoint(to netip.AddrPort) (conn.Endpoint, error) {
	b.mu.RLock()
	ep := b.udpEPs[to]
	b.mu.RUnlock()
	if ep != nil {
		return ep, nil
	}
	ep, err := b.udp.ParseEndpoint(to.String())
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(b.udpEPs) > 4096 {
		clear(b.udpEPs)
	}
	b.udpEPs[to] = ep
	b.mu.Unlock()
	return ep, nil
}

// receiveUDP wraps a UDP receive function: path messages and STUN answers
// are handled here, WireGuard packets are labelled with their peer's
// endpoint, and datagrams from sources of no known peer are dropped. A
// dropped or handled datagram gets size 0, which the device skips.
func (b *meshBind) receiveUDP(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		var lastSrc netip.AddrPort
		var lastPeer *peerPath
		for i := 0; i < n; i++ {
			pkt := packets[i][:sizes[i]]
			src := endpointAddr(eps[i])
			switch {
			case isPathMsg(pkt):
				b.handlePathMsg(pkt, src)
				sizes[i] = 0
				continue
			case stun.Is(pkt):
				b.handleSTUN(pkt)
				sizes[i] = 0
				continue
			}
			if src != lastSrc || lastPeer == nil {
				lastSrc, lastPeer = src, b.peerAt(src)
			}
			if lastPeer == nil {
				b.unknownSource.Add(1)
				sizes[i] = 0
				continue
			}
			if !b.arbiter.acceptHandshake(pkt) {
				sizes[i] = 0
				continue
			}
			eps[i] = lastPeer.ep
		}
		return n, err
	}
}

func (b *meshBind) peerAt(a netip.AddrPort) *peerPath {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byAddr[a]
}

// learnAddr remembers that authenticated path messages of p come from a,
// so WireGuard packets from a are p's.
func (b *meshBind) learnAddr(p *peerPath, a netip.AddrPort) {
	if !a.IsValid() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peers[p.key] != p {
		return // removed meanwhile
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if containsAddr(p.seenAddrs, a) {
		return
	}
	if len(p.seenAddrs) == maxAddrsPerPeer {
		old := p.seenAddrs[0]
		p.seenAddrs = p.seenAddrs[1:]
		if b.byAddr[old] == p && !containsAddr(p.mapAddrs, old) {
			delete(b.byAddr, old)
		}
	}
	p.seenAddrs = append(p.seenAddrs, a)
	b.byAddr[a] = p
}

// endpointAddr is the address of a UDP endpoint.
func endpointAddr(ep conn.Endpoint) netip.AddrPort {
	if se, ok := ep.(*conn.StdNetEndpoint); ok {
		return netip.AddrPortFrom(se.Addr().Unmap(), se.Port())
	}
	ap, _ := netip.ParseAddrPort(ep.DstToString())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
