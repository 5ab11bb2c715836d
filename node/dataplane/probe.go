package dataplane

import (
	"crypto/rand"
	"net/netip"
	"slices"
	"time"

	"github.com/meshinit/meshinit/internal/stun"
)

// The prober: for each peer that carries traffic, a round of pings to its
// candidates (and a call-me-maybe over the relay) every probeInterval
// while no direct path is trusted, and a heartbeat ping on the direct path
// every heartbeatInterval while one is. Idle peers get nothing.

// probeTick is the prober's resolution.
const probeTick = 500 * time.Millisecond

// stunInterval: how often the reflexive endpoint is refreshed while any
// peer carries traffic (NAT mappings typically live 30 s or more).
const stunInterval = 25 * time.Second

func (b *meshBind) probeLoop() {
	t := time.NewTicker(probeTick)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.probeRound()
	}
}

// probeAction is what one round does for one peer.
type probeAction struct {
	p           *peerPath
	ping        []netip.AddrPort
	callMeMaybe bool
}

func (b *meshBind) probeRound() {
	now := b.now()
	relayUp := b.relayUp()
	b.mu.RLock()
	peers := make([]*peerPath, 0, len(b.peers))
	for _, p := range b.peers {
		peers = append(peers, p)
	}
	b.mu.RUnlock()
	var actions []probeAction
	for _, p := range peers {
		if a, ok := b.planProbe(p, now, relayUp); ok {
			actions = append(actions, a)
		}
	}
	if len(actions) == 0 {
		return
	}
	if relayUp {
		b.refreshSTUN(now)
	}
	for _, a := range actions {
		b.doProbe(a)
	}
}

// probePeer runs p's probe round now (its first packet after idling).
func (b *meshBind) probePeer(p *peerPath, now time.Time) {
	relayUp := b.relayUp()
	if a, ok := b.planProbe(p, now, relayUp); ok {
		if relayUp {
			b.refreshSTUN(now)
		}
		b.doProbe(a)
	}
}

func (b *meshBind) doProbe(a probeAction) {
	for _, to := range a.ping {
		b.ping(a.p, to)
	}
	if a.callMeMaybe {
		b.sendCallMeMaybe(a.p)
	}
}

// planProbe decides what p needs this round.
func (b *meshBind) planProbe(p *peerPath, now time.Time, relayUp bool) (probeAction, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, sp := range p.pings {
		if now.Sub(sp.at) > pingTimeout {
			delete(p.pings, id)
		}
	}
	if !p.ok || !p.activeLocked(now) {
		return probeAction{}, false
	}
	trusted := p.best.IsValid() && now.Before(p.trustUntil)
	if !trusted && p.best.IsValid() && !p.lostDirect {
		p.lostDirect = true // it was in use and stopped answering
		p.best = netip.AddrPort{}
	}
	switch {
	case trusted && now.Sub(p.lastBeat) >= heartbeatInterval:
		p.lastBeat = now
		return probeAction{p: p, ping: []netip.AddrPort{p.best}}, true
	case !trusted && now.Sub(p.lastProbe) >= probeInterval:
		p.lastProbe = now
		return probeAction{p: p, ping: p.candidatesLocked(), callMeMaybe: relayUp}, true
	}
	return probeAction{}, false
}

// ping sends an authenticated ping to p at address to.
func (b *meshBind) ping(p *peerPath, to netip.AddrPort) {
	m := pathMsg{typ: msgPing, ts: b.now().UnixMilli()}
	rand.Read(m.txid[:])
	p.mu.Lock()
	p.pings[m.txid] = sentPing{to: to, at: b.now()}
	p.mu.Unlock()
	b.sendPathMsg(p, &m, to)
}

// sendCallMeMaybe tells p over the relay where we can be reached, so it
// pings those addresses while our pings go to it.
func (b *meshBind) sendCallMeMaybe(p *peerPath) {
	m := pathMsg{typ: msgCallMeMaybe, ts: b.now().UnixMilli(), addrs: b.ownEndpoints()}
	b.sendPathMsg(p, &m, netip.AddrPort{})
}

// ownEndpoints are our candidates for peers: the reflexive address first
// (the one that crosses NATs), then the local ones.
func (b *meshBind) ownEndpoints() []netip.AddrPort {
	var out []netip.AddrPort
	b.mu.RLock()
	if b.reflexive.IsValid() {
		out = append(out, b.reflexive)
	}
	b.mu.RUnlock()
	if b.advertise != nil {
		for _, a := range b.advertise() {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if len(out) > maxCallMeMaybe {
		out = out[:maxCallMeMaybe]
	}
	return out
}

// sendPathMsg sends m to p: over UDP to `to` when given, else like data
// (direct path, relay, or candidates).
func (b *meshBind) sendPathMsg(p *peerPath, m *pathMsg, to netip.AddrPort) error {
	if !p.ok {
		return nil
	}
	m.from = b.self
	pkt := m.encode(&p.pair, p.key)
	if to.IsValid() {
		return b.sendUDP([][]byte{pkt}, to)
	}
	p.mu.Lock()
	r := p.routeLocked(b.now(), b.relayState())
	p.mu.Unlock()
	if m.typ == msgCallMeMaybe && r.kind != PathRelay {
		if !b.relayUp() {
			return nil
		}
		r = route{kind: PathRelay}
	}
	return b.sendRoute(p, r, [][]byte{pkt})
}

// handlePathMsg checks and acts on a path message that came from src (an
// invalid src: over the relay). Anything that does not verify, or is a
// replay, is dropped without effect.
func (b *meshBind) handlePathMsg(pkt []byte, src netip.AddrPort) {
	p := b.peer(senderOf(pkt))
	if p == nil || !p.ok {
		b.badPathMsg.Add(1)
		return
	}
	m, err := decodePathMsg(pkt, &p.pair, b.self)
	if err != nil {
		b.badPathMsg.Add(1)
		b.log.Debug("path message rejected", "from", src.String(), "err", err)
		return
	}
	now := b.now()
	switch m.typ {
	case msgPing:
		if !b.fresh(p, &m) {
			return
		}
		b.log.Debug("ping", "peer", p.key.String(), "from", src.String())
		if src.IsValid() {
			b.learnAddr(p, src)
			b.sendPathMsg(p, &pathMsg{typ: msgPong, txid: m.txid, observed: src}, src)
			b.pingBack(p, src, now)
		}
	case msgPong:
		p.mu.Lock()
		sp, ok := p.pings[m.txid]
		delete(p.pings, m.txid)
		changed := ok && src == sp.to && p.pongLocked(sp, now)
		rtt := p.bestRTT
		p.mu.Unlock()
		if !ok || src != sp.to {
			b.badPathMsg.Add(1)
			b.log.Debug("pong answers no ping of ours", "from", src.String(), "known", ok, "to", sp.to.String())
			return
		}
		b.learnAddr(p, src)
		b.noteObserved(m.observed)
		if changed {
			b.log.Info("peer path", "peer", p.key.String(), "path", PathDirect, "endpoint", src.String(), "rtt", rtt.String())
		}
	case msgCallMeMaybe:
		if !b.fresh(p, &m) {
			return
		}
		b.learnAddr(p, src)
		p.mu.Lock()
		p.theirAddrs = usableAddrs(m.addrs)
		answer := now.Sub(p.lastAnswer) >= punchBackInterval
		if answer {
			p.lastAnswer = now
		}
		addrs := slices.Clone(p.theirAddrs)
		p.mu.Unlock()
		b.log.Debug("call-me-maybe", "peer", p.key.String(), "endpoints", addrs, "answer", answer)
		if answer {
			for _, a := range addrs {
				b.ping(p, a)
			}
		}
	case msgHandshakeRequest:
		if !b.fresh(p, &m) {
			return
		}
		b.learnAddr(p, src)
		b.arbiter.incomingRequest(p.key)
	}
}

// fresh applies replay protection to a timestamped message.
func (b *meshBind) fresh(p *peerPath, m *pathMsg) bool {
	p.mu.Lock()
	ok := p.fresh.accept(m.ts, m.mac)
	p.mu.Unlock()
	if !ok {
		b.badPathMsg.Add(1)
	}
	return ok
}

// pingBack pings an address a peer's ping came from, if the peer carries
// traffic and the address is not the direct path already: it validates
// our direction and opens our NAT for it.
func (b *meshBind) pingBack(p *peerPath, src netip.AddrPort, now time.Time) {
	p.mu.Lock()
	trusted := p.best == src && now.Before(p.trustUntil)
	due := now.Sub(p.punched[src]) >= punchBackInterval
	if due && !trusted {
		if len(p.punched) > maxAddrsPerPeer {
			clear(p.punched)
		}
		p.punched[src] = now
	}
	p.mu.Unlock()
	if due && !trusted {
		b.ping(p, src)
	}
}

// usableAddrs keeps the addresses a packet can be sent to.
func usableAddrs(in []netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range in {
		if checkEndpoint(a) == nil && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// noteObserved records our address as a peer saw it (authenticated pong).
func (b *meshBind) noteObserved(a netip.AddrPort) {
	if checkEndpoint(a) != nil {
		return
	}
	b.mu.Lock()
	if !b.reflexive.IsValid() {
		b.reflexive = a
	}
	b.mu.Unlock()
}

// refreshSTUN asks the coordinator's STUN responder for our reflexive
// address, at most every stunInterval.
func (b *meshBind) refreshSTUN(now time.Time) {
	server := b.relay.stunServer()
	if !server.IsValid() {
		return
	}
	b.mu.Lock()
	if now.Sub(b.lastSTUN) < stunInterval {
		b.mu.Unlock()
		return
	}
	b.lastSTUN = now
	for tx, at := range b.stunTx {
		if now.Sub(at) > time.Minute {
			delete(b.stunTx, tx)
		}
	}
	tx := stun.NewTxID()
	b.stunTx[tx] = now
	b.mu.Unlock()
	if err := b.sendUDP([][]byte{stun.Request(tx)}, server); err != nil {
		b.log.Debug("STUN request", "server", server.String(), "err", err)
	}
}

// handleSTUN takes our reflexive address from the answer to one of our
// requests; anything else is ignored.
func (b *meshBind) handleSTUN(pkt []byte) {
	tx, mapped, err := stun.ParseResponse(pkt)
	if err != nil || checkEndpoint(mapped) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.stunTx[tx]; !ok {
		return
	}
	delete(b.stunTx, tx)
	if b.reflexive != mapped {
		b.reflexive = mapped
		go b.log.Debug("reflexive endpoint", "endpoint", mapped.String())
	}
}
