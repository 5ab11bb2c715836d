package dataplane

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// Peer is another node as the data plane needs it.
type Peer struct {
	PublicKey meshapi.Key
	// AllowedIPs are the peer's mesh addresses (its /32 and /128).
	AllowedIPs []netip.Prefix
	// Endpoints are candidate UDP addresses, best first. Until a handshake
	// completes, packets go to each of them (see candidateBind); then the
	// peer sticks to the one that answered.
	Endpoints []netip.AddrPort
	// Tags are the peer's tags ("tag:ci"): the packet filter judges the
	// peer's new flows by them.
	Tags []string
}

// PeerStatus is a peer's state as the device sees it.
type PeerStatus struct {
	PublicKey meshapi.Key
	// Endpoint is the peer's UDP address while the path is direct, else
	// zero.
	Endpoint netip.AddrPort
	// Path is how packets reach the peer and why.
	Path          PathStatus
	LastHandshake time.Time // zero if none yet
	RxBytes       uint64
	TxBytes       uint64
}

// UpsertPeer adds p, or updates it in place, in one small configuration
// transaction: other peers and live sessions are untouched. A peer whose
// candidate endpoints did not change keeps the endpoint it settled on.
func (d *Device) UpsertPeer(p Peer) error {
	if p.PublicKey.IsZero() {
		return errors.New("upsert peer: public key is all zeros")
	}
	allowed, err := checkAllowedIPs(p.AllowedIPs)
	if err != nil {
		return fmt.Errorf("upsert peer %v: %w", p.PublicKey, err)
	}
	cands := d.usableCandidates(p)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("upsert peer: device is closed")
	}
	old, known := d.peers[p.PublicKey]
	var sb strings.Builder
	fmt.Fprintf(&sb, "public_key=%s\nreplace_allowed_ips=true\n", hex.EncodeToString(p.PublicKey[:]))
	for _, a := range allowed {
		fmt.Fprintf(&sb, "allowed_ip=%s\n", a)
	}
	if !known {
		// The endpoint is the peer itself (see peerEndpoint): the bind
		// picks the path. No persistent keepalive: an idle peer gets no
		// packets at all.
		fmt.Fprintf(&sb, "endpoint=%s\n", hex.EncodeToString(p.PublicKey[:]))
	}
	if known {
		// The allowed IPs may have changed: forget the old ones first.
		d.filter.RemovePeer(d.peerIPs[p.PublicKey])
	}
	// The bind and the arbiter must know the peer before the device's
	// first packet to it goes out.
	d.bind.setPeer(p.PublicKey, cands)
	d.bind.arbiter.setPeer(p.PublicKey, !known)
	if err := d.wg.IpcSet(sb.String()); err != nil {
		if known {
			d.bind.setPeer(p.PublicKey, old)
		} else {
			d.bind.arbiter.removePeer(p.PublicKey)
			d.bind.removePeer(p.PublicKey)
		}
		return fmt.Errorf("upsert peer %v: %w", p.PublicKey, err)
	}
	d.peers[p.PublicKey] = cands
	d.peerIPs[p.PublicKey] = peerAddrs(allowed)
	d.filter.SetPeer(d.peerIPs[p.PublicKey], p.Tags)
	d.bind.arbiter.started(p.PublicKey)
	if !known {
		d.log.Debug("peer added", "peer", p.PublicKey.String(), "allowed_ips", allowed, "endpoints", cands)
	} else {
		d.log.Debug("peer updated", "peer", p.PublicKey.String(), "allowed_ips", allowed, "endpoints", cands)
	}
	return nil
}

// usableCandidates drops endpoints no packet can reach, duplicates, and
// everything past maxCandidates, logging what it dropped.
func (d *Device) usableCandidates(p Peer) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ap := range p.Endpoints {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		switch {
		case checkEndpoint(ap) != nil:
			d.log.Warn("ignoring unusable peer endpoint", "peer", p.PublicKey.String(), "endpoint", ap.String(), "reason", checkEndpoint(ap).Error())
		case slices.Contains(out, ap):
		case len(out) == maxCandidates:
			d.log.Warn("ignoring peer endpoint beyond the candidate limit", "peer", p.PublicKey.String(), "endpoint", ap.String(), "limit", maxCandidates)
		default:
			out = append(out, ap)
		}
	}
	return out
}

// checkAllowedIPs normalises a peer's allowed IPs.
func checkAllowedIPs(in []netip.Prefix) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return nil, errors.New("no allowed IPs: the peer's mesh /32 and /128 are needed")
	}
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("allowed IP %v is not a valid prefix", p)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RemovePeer removes the peer and drops its sessions; packets to its
// addresses go nowhere afterwards. Removing an unknown peer is not an error.
func (d *Device) RemovePeer(k meshapi.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("remove peer: device is closed")
	}
	if _, known := d.peers[k]; !known {
		return nil
	}
	if err := d.wg.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", hex.EncodeToString(k[:]))); err != nil {
		return fmt.Errorf("remove peer %v: %w", k, err)
	}
	d.filter.RemovePeer(d.peerIPs[k])
	delete(d.peerIPs, k)
	delete(d.peers, k)
	d.bind.arbiter.removePeer(k)
	d.bind.removePeer(k)
	d.log.Debug("peer removed", "peer", k.String())
	return nil
}

// Peers reports every peer's endpoint, last handshake and traffic counters.
func (d *Device) Peers() []PeerStatus {
	if d.isClosed() {
		return nil
	}
	text, err := d.wg.IpcGet()
	if err != nil {
		d.log.Warn("reading peer status", "err", err)
		return nil
	}
	peers, err := parsePeerStatus(text)
	if err != nil {
		d.log.Warn("reading peer status", "err", err)
	}
	for i := range peers {
		peers[i].Path = d.Path(peers[i].PublicKey)
		peers[i].Endpoint = peers[i].Path.Endpoint
	}
	return peers
}
