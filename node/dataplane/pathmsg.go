package dataplane

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/meshinit/meshinit/meshapi"
)

// Path messages are the mesh's own small datagrams between two nodes,
// next to WireGuard's on the same UDP socket and over the relay: probes
// that validate a direct path (ping, pong), "call me maybe" (the sender's
// endpoints, so both sides send at once and open their NATs), and the
// handshake request of the arbiter.
//
// Every one is authenticated: a MAC keyed from the static-static X25519 of
// the two nodes' WireGuard keys, so only the two of them can make one, and
// a packet from anybody else changes nothing. Layout:
//
//	"MSHP" | version 1 | type | sender key (32) | body | MAC (16)
//
// MAC = HMAC-SHA256(pair key, receiver key | everything before the MAC),
// first 16 bytes; pair key = SHA-256("meshinit path v1" | X25519(own
// private, peer public)). Putting the receiver key in the MAC input keeps
// a message from being reflected back to its sender.
var pathMagic = [4]byte{'M', 'S', 'H', 'P'}

const (
	pathVersion   = 1
	pathHeaderLen = 4 + 1 + 1 + 32
	pathMACLen    = 16
	txIDLen       = 12
	addrLen       = 18 // 16-byte IP (IPv4 mapped) + big-endian port
	// maxCallMeMaybe bounds the endpoints one call-me-maybe carries.
	maxCallMeMaybe = 8
)

type pathMsgType byte

const (
	msgPing             pathMsgType = 1 // txid, sender time (unix ms)
	msgPong             pathMsgType = 2 // txid, the ping's source as the receiver saw it
	msgCallMeMaybe      pathMsgType = 3 // sender time, endpoints
	msgHandshakeRequest pathMsgType = 4 // sender time
)

// pathMsg is a decoded path message.
type pathMsg struct {
	typ      pathMsgType
	from     meshapi.Key
	txid     [txIDLen]byte
	ts       int64            // ping, call-me-maybe, handshake request
	observed netip.AddrPort   // pong
	addrs    []netip.AddrPort // call-me-maybe
	mac      [pathMACLen]byte
}

// isPathMsg reports whether a datagram is a path message (not yet
// checked). WireGuard messages start with a little-endian type 1-4.
func isPathMsg(p []byte) bool {
	return len(p) >= pathHeaderLen+pathMACLen && [4]byte(p[:4]) == pathMagic
}

// pairKey derives the MAC key two nodes share.
func pairKey(priv *ecdh.PrivateKey, peer meshapi.Key) ([32]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return [32]byte{}, err
	}
	dh, err := priv.ECDH(pub)
	if err != nil {
		return [32]byte{}, err // an all-zero shared secret (low-order point)
	}
	h := sha256.New()
	h.Write([]byte("meshinit path v1"))
	h.Write(dh)
	var k [32]byte
	h.Sum(k[:0])
	return k, nil
}

func pathMAC(key *[32]byte, receiver meshapi.Key, msg []byte) [pathMACLen]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(receiver[:])
	m.Write(msg)
	var out [pathMACLen]byte
	copy(out[:], m.Sum(nil))
	return out
}

// encode builds the datagram of m (whose from is the sender) for receiver.
func (m *pathMsg) encode(key *[32]byte, receiver meshapi.Key) []byte {
	b := make([]byte, 0, 128)
	b = append(b, pathMagic[:]...)
	b = append(b, pathVersion, byte(m.typ))
	b = append(b, m.from[:]...)
	switch m.typ {
	case msgPing:
		b = append(b, m.txid[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(m.ts))
	case msgPong:
		b = append(b, m.txid[:]...)
		b = appendAddr(b, m.observed)
	case msgCallMeMaybe:
		b = binary.BigEndian.AppendUint64(b, uint64(m.ts))
		for i, a := range m.addrs {
			if i == maxCallMeMaybe {
				break
			}
			b = appendAddr(b, a)
		}
	case msgHandshakeRequest:
		b = binary.BigEndian.AppendUint64(b, uint64(m.ts))
	}
	mac := pathMAC(key, receiver, b)
	return append(b, mac[:]...)
}

func appendAddr(b []byte, a netip.AddrPort) []byte {
	ip := a.Addr().As16()
	b = append(b, ip[:]...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

func readAddr(b []byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])).Unmap(), binary.BigEndian.Uint16(b[16:]))
}

var errPathMsg = errors.New("malformed path message")

// senderOf returns the claimed sender of a path message, to find the key
// that checks it.
func senderOf(p []byte) meshapi.Key { return meshapi.Key(p[6:38]) }

// decodePathMsg checks p's MAC with key (shared with its claimed sender)
// for receiver self, then decodes it.
func decodePathMsg(p []byte, key *[32]byte, self meshapi.Key) (pathMsg, error) {
	if !isPathMsg(p) || p[4] != pathVersion {
		return pathMsg{}, errPathMsg
	}
	body, mac := p[:len(p)-pathMACLen], p[len(p)-pathMACLen:]
	want := pathMAC(key, self, body)
	if !hmac.Equal(want[:], mac) {
		return pathMsg{}, errors.New("path message MAC does not verify")
	}
	m := pathMsg{typ: pathMsgType(p[5]), from: senderOf(p)}
	copy(m.mac[:], mac)
	rest := body[pathHeaderLen:]
	switch m.typ {
	case msgPing:
		if len(rest) != txIDLen+8 {
			return pathMsg{}, errPathMsg
		}
		copy(m.txid[:], rest)
		m.ts = int64(binary.BigEndian.Uint64(rest[txIDLen:]))
	case msgPong:
		if len(rest) != txIDLen+addrLen {
			return pathMsg{}, errPathMsg
		}
		copy(m.txid[:], rest)
		m.observed = readAddr(rest[txIDLen:])
	case msgCallMeMaybe:
		if len(rest) < 8 || (len(rest)-8)%addrLen != 0 || (len(rest)-8)/addrLen > maxCallMeMaybe {
			return pathMsg{}, errPathMsg
		}
		m.ts = int64(binary.BigEndian.Uint64(rest))
		for a := rest[8:]; len(a) > 0; a = a[addrLen:] {
			m.addrs = append(m.addrs, readAddr(a))
		}
	case msgHandshakeRequest:
		if len(rest) != 8 {
			return pathMsg{}, errPathMsg
		}
		m.ts = int64(binary.BigEndian.Uint64(rest))
	default:
		return pathMsg{}, errPathMsg
	}
	return m, nil
}

// freshness rejects replays of a peer's timestamped path messages: a
// message is accepted once, and only if it is at most replayWindow older
// than the newest one accepted from that peer. A replayed ping or request
// therefore changes nothing, and a captured one goes stale in seconds.
type freshness struct {
	newest int64 // unix ms
	recent [16][pathMACLen]byte
	next   int
}

const replayWindow = 10_000 // ms

func (f *freshness) accept(ts int64, mac [pathMACLen]byte) bool {
	if f.newest != 0 && ts < f.newest-replayWindow {
		return false
	}
	for _, r := range f.recent {
		if r == mac {
			return false
		}
	}
	f.recent[f.next] = mac
	f.next = (f.next + 1) % len(f.recent)
	f.newest = max(f.newest, ts)
	return true
}
