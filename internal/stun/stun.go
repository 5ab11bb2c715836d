// Package stun is the part of STUN (RFC 5389) the mesh uses: binding
// requests and their success responses with XOR-MAPPED-ADDRESS, so a node
// learns the address and port its UDP packets leave its NAT from. The
// coordinator answers requests (Server); nodes build requests and parse
// the answers over their WireGuard socket.
package stun

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

const (
	headerLen    = 20
	magicCookie  = 0x2112A442
	typeRequest  = 0x0001 // binding request
	typeSuccess  = 0x0101 // binding success response
	attrMapped   = 0x0001 // MAPPED-ADDRESS
	attrXMapped  = 0x0020 // XOR-MAPPED-ADDRESS
	attrSoftware = 0x8022
	maxMessage   = 1500
)

// TxID is a transaction ID.
type TxID [12]byte

// NewTxID returns a random transaction ID.
func NewTxID() TxID {
	var t TxID
	rand.Read(t[:])
	return t
}

// Request returns a binding request with transaction ID tx.
func Request(tx TxID) []byte {
	b := make([]byte, headerLen)
	binary.BigEndian.PutUint16(b[0:], typeRequest)
	binary.BigEndian.PutUint32(b[4:], magicCookie)
	copy(b[8:], tx[:])
	return b
}

// Is reports whether b looks like a STUN message: the first two bits are
// zero, the magic cookie is in place, and it is not shaped like a
// WireGuard message (whose first byte is 1 to 4 and bytes 1-3 are zero;
// a binding response, type 0x0101, never is).
func Is(b []byte) bool {
	if len(b) < headerLen || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:]) != magicCookie {
		return false
	}
	return b[1]|b[2]|b[3] != 0 || b[0] == 0 || b[0] > 4
}

// ErrMalformed marks a message that is not well-formed STUN.
var ErrMalformed = errors.New("stun: malformed message")

// parse checks the header and attribute layout of b and returns its type,
// transaction ID and attributes (type → value; the first of each type).
func parse(b []byte) (typ uint16, tx TxID, attrs map[uint16][]byte, err error) {
	if !Is(b) || len(b) > maxMessage {
		return 0, tx, nil, fmt.Errorf("%w: no STUN header", ErrMalformed)
	}
	typ = binary.BigEndian.Uint16(b)
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n%4 != 0 || headerLen+n != len(b) {
		return 0, tx, nil, fmt.Errorf("%w: length %d does not match %d bytes", ErrMalformed, n, len(b)-headerLen)
	}
	copy(tx[:], b[8:headerLen])
	attrs = map[uint16][]byte{}
	for rest := b[headerLen:]; len(rest) > 0; {
		if len(rest) < 4 {
			return 0, tx, nil, fmt.Errorf("%w: truncated attribute", ErrMalformed)
		}
		at, al := binary.BigEndian.Uint16(rest), int(binary.BigEndian.Uint16(rest[2:]))
		padded := (al + 3) &^ 3
		if 4+padded > len(rest) {
			return 0, tx, nil, fmt.Errorf("%w: attribute %#x of %d bytes overruns the message", ErrMalformed, at, al)
		}
		if _, dup := attrs[at]; !dup {
			attrs[at] = rest[4 : 4+al]
		}
		rest = rest[4+padded:]
	}
	return typ, tx, attrs, nil
}

// ParseRequest checks that b is a binding request and returns its
// transaction ID.
func ParseRequest(b []byte) (TxID, error) {
	typ, tx, _, err := parse(b)
	if err != nil {
		return tx, err
	}
	if typ != typeRequest {
		return tx, fmt.Errorf("%w: type %#04x is not a binding request", ErrMalformed, typ)
	}
	return tx, nil
}

// Response returns the binding success response to tx telling the client
// its address is from.
func Response(tx TxID, from netip.AddrPort) []byte {
	ip := from.Addr().Unmap()
	family, alen := byte(1), 4
	if ip.Is6() {
		family, alen = 2, 16
	}
	attrLen := 4 + alen
	b := make([]byte, headerLen+4+attrLen)
	binary.BigEndian.PutUint16(b[0:], typeSuccess)
	binary.BigEndian.PutUint16(b[2:], uint16(4+attrLen))
	binary.BigEndian.PutUint32(b[4:], magicCookie)
	copy(b[8:], tx[:])
	a := b[headerLen:]
	binary.BigEndian.PutUint16(a[0:], attrXMapped)
	binary.BigEndian.PutUint16(a[2:], uint16(attrLen))
	a[5] = family
	binary.BigEndian.PutUint16(a[6:], from.Port()^(magicCookie>>16))
	raw := ip.AsSlice()
	xorKey := b[4:headerLen] // cookie, then transaction ID
	for i := range raw {
		a[8+i] = raw[i] ^ xorKey[i]
	}
	return b
}

// ParseResponse reads a binding success response: its transaction ID and
// the mapped address (XOR-MAPPED-ADDRESS, or the older MAPPED-ADDRESS).
func ParseResponse(b []byte) (TxID, netip.AddrPort, error) {
	typ, tx, attrs, err := parse(b)
	if err != nil {
		return tx, netip.AddrPort{}, err
	}
	if typ != typeSuccess {
		return tx, netip.AddrPort{}, fmt.Errorf("%w: type %#04x is not a binding success", ErrMalformed, typ)
	}
	if v, ok := attrs[attrXMapped]; ok {
		ap, err := decodeAddress(v, b[4:headerLen])
		return tx, ap, err
	}
	if v, ok := attrs[attrMapped]; ok {
		ap, err := decodeAddress(v, nil)
		return tx, ap, err
	}
	return tx, netip.AddrPort{}, fmt.Errorf("%w: no mapped address", ErrMalformed)
}

// decodeAddress decodes a (XOR-)MAPPED-ADDRESS value; xorKey is nil for
// the plain one.
func decodeAddress(v, xorKey []byte) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: short address", ErrMalformed)
	}
	alen := map[byte]int{1: 4, 2: 16}[v[1]]
	if alen == 0 || len(v) != 4+alen {
		return netip.AddrPort{}, fmt.Errorf("%w: address family %d with %d bytes", ErrMalformed, v[1], len(v)-4)
	}
	port := binary.BigEndian.Uint16(v[2:])
	raw := make([]byte, alen)
	copy(raw, v[4:])
	if xorKey != nil {
		port ^= magicCookie >> 16
		for i := range raw {
			raw[i] ^= xorKey[i]
		}
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), port), nil
}
