package dataplane

import (
	"crypto/ecdh"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/meshinit/meshinit/meshapi"
)

// newBind builds the device's bind: UDP, the arbiter, and the relay
// client when cfg names a relay.
func (d *Device) newBind(cfg Config) (*meshBind, error) {
	priv, err := ecdh.X25519().NewPrivateKey(cfg.PrivateKey[:])
	if err != nil {
		return nil, fmt.Errorf("WireGuard private key: %w", err)
	}
	arbiter := newHandshakeArbiter(d.pub)
	arbiter.initiate = d.initiateOnRequest
	b := newMeshBind(conn.NewDefaultBind(), d.pub, priv, arbiter, d.log)
	b.advertise = func() []netip.AddrPort {
		if cfg.AdvertiseEndpoints != nil {
			return cfg.AdvertiseEndpoints(d.ListenPort())
		}
		eps, _ := d.LocalEndpoints()
		return eps
	}
	if cfg.Relay != nil {
		b.relay = newRelayClient(*cfg.Relay, d.log)
		b.relay.onConnect = func() { b.refreshSTUN(b.now()) }
	}
	go b.probeLoop()
	return b, nil
}

// initiateOnRequest starts a handshake with a peer that asked for one (see
// handshakeArbiter). The initiation goes over the path the bind chooses
// for the peer; nothing about the peer is changed.
func (d *Device) initiateOnRequest(k meshapi.Key) {
	if p := d.wg.LookupPeer(device.NoisePublicKey(k)); p != nil {
		p.SendHandshakeInitiation(false)
	}
}

// Path reports how packets reach peer k, and why.
func (d *Device) Path(k meshapi.Key) PathStatus {
	p := d.bind.peer(k)
	if p == nil {
		return PathStatus{Kind: PathNone, Reason: "not a peer"}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statusLocked(d.bind.now(), d.bind.relayState())
}

// Relay reports the relay connection; ok is false when the device has
// none configured.
func (d *Device) Relay() (s RelayStatus, ok bool) {
	if d.bind.relay == nil {
		return RelayStatus{State: "off"}, false
	}
	return d.bind.relay.Status(), true
}

// PathStats are the bind's counters of refused input.
type PathStats struct {
	// UnknownSource counts datagrams dropped because their source belongs
	// to no peer (no map candidate, no authenticated path message from it).
	UnknownSource uint64
	// RejectedPathMessages counts path messages that failed their MAC,
	// were replays, came from strangers, or answered no ping of ours.
	RejectedPathMessages uint64
}

// PathStats returns the bind's counters.
func (d *Device) PathStats() PathStats {
	return PathStats{UnknownSource: d.bind.unknownSource.Load(), RejectedPathMessages: d.bind.badPathMsg.Load()}
}
