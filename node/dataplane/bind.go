package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

// meshBind wraps the UDP bind (wireguard-go's batching StdNetBind) with two
// things the mesh needs and wireguard-go does not do by itself.
//
// Candidate endpoints. The map gives each peer several candidate endpoints
// (one per host address) and only some are reachable from here.
// wireguard-go sends a handshake initiation at most once per RekeyTimeout
// (5 s), so trying the candidates one per attempt would cost 5 s for every
// dead one. Instead, while a peer's endpoint is a candidate list, every
// packet for it (the handshake initiation first of all) goes to each
// candidate, in order. Only the real peer can answer (the initiation is
// encrypted to its static key); the device then replaces the list with the
// address the authenticated answer came from (roaming), so the peer sticks
// to the candidate that works after one round trip. Copies that reach the
// same peer twice are dropped by WireGuard's replay protection.
//
// Crossing handshakes. Both nodes learn of each other at the same moment
// and both initiate at once; see handshakeArbiter.
type meshBind struct {
	conn.Bind
	port    atomic.Uint32 // the UDP port actually bound, for LocalEndpoints
	arbiter *handshakeArbiter
}

func newMeshBind(inner conn.Bind, arbiter *handshakeArbiter) *meshBind {
	b := &meshBind{Bind: inner, arbiter: arbiter}
	arbiter.resend = func(msg []byte, ep conn.Endpoint) {
		b.send([][]byte{msg}, ep) // best effort: the peer asks again
	}
	return b
}

// Open implements conn.Bind: it remembers the bound port and lets the
// arbiter see incoming handshake messages.
func (b *meshBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.port.Store(uint32(actual))
	for i, fn := range fns {
		fns[i] = b.arbiter.filterReceive(fn)
	}
	return fns, actual, nil
}

// Send implements conn.Bind: a candidate list gets a copy on each
// candidate, and the arbiter may turn a handshake initiation into a
// handshake request.
func (b *meshBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if isInitiation(bufs) {
		var dests []netip.AddrPort
		if ce, ok := ep.(*candidateEndpoint); ok {
			dests = ce.addrs
		} else {
			dests = []netip.AddrPort{endpointAddr(ep)}
		}
		if req := b.arbiter.outgoingInitiation(bufs[0], ep, dests); req != nil {
			bufs = [][]byte{req}
		}
	}
	return b.send(bufs, ep)
}

// send sends without looking at the packets.
func (b *meshBind) send(bufs [][]byte, ep conn.Endpoint) error {
	ce, isList := ep.(*candidateEndpoint)
	if !isList {
		return b.Bind.Send(bufs, ep)
	}
	var errs []error
	for _, c := range ce.cands {
		if err := b.Bind.Send(bufs, c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(ce.cands) {
		return errors.Join(errs...)
	}
	return nil // at least one candidate took the packets
}

// ParseEndpoint implements conn.Bind. It accepts a single address, or a
// comma-separated candidate list as written by formatCandidates.
func (b *meshBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	addrs, err := parseCandidates(s)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 1 {
		return b.Bind.ParseEndpoint(addrs[0].String())
	}
	ce := &candidateEndpoint{addrs: addrs}
	for _, a := range addrs {
		ep, err := b.Bind.ParseEndpoint(a.String())
		if err != nil {
			return nil, fmt.Errorf("candidate endpoint %v: %w", a, err)
		}
		ce.cands = append(ce.cands, ep)
	}
	return ce, nil
}

// endpointAddr is the destination address of an endpoint.
func endpointAddr(ep conn.Endpoint) netip.AddrPort {
	if se, ok := ep.(*conn.StdNetEndpoint); ok {
		return netip.AddrPortFrom(se.Addr().Unmap(), se.Port())
	}
	ap, _ := netip.ParseAddrPort(ep.DstToString())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
