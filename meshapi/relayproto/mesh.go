package relayproto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meshinit/meshinit/meshapi"
)

// Replica links. Several meshcoord replicas each run a relay; a node
// connects to the relay of the replica it uses, so its peer may be on
// another one. Each relay therefore dials every other replica's relay (at
// the same GET /v1/relay, "Upgrade: meshrelay") as a replica, not as a
// node:
//
//	GET /v1/relay HTTP/1.1
//	Connection: Upgrade
//	Upgrade: meshrelay
//	Meshrelay-Replica: <dialer's replica id>
//	Meshrelay-Nonce: <32 random bytes, base64>
//
// The relay answers 101 with its own Meshrelay-Replica and Meshrelay-Nonce
// and Meshrelay-Proof: HMAC-SHA256 under the mesh key (a secret every
// replica reads from the shared database) of both ids and both nonces,
// role "relay". The dialer checks it, then sends FrameMeshAuth with its
// own proof (role "dialer"); the relay takes no other frame before it.
// Fresh nonces on both sides make a proof useless for any other link, and
// the role in the MAC keeps one side's proof from passing as the other's.
//
// Over the link the relay sends FramePresence (which nodes are connected
// to it) and the dialer sends FrameForward (packets for those nodes).
// Each direction between two replicas is its own link.
const (
	HeaderReplica = "Meshrelay-Replica"
	HeaderNonce   = "Meshrelay-Nonce"
	HeaderProof   = "Meshrelay-Proof"

	// ProofLen is the length of a proof (HMAC-SHA256).
	ProofLen = sha256.Size
	// NonceLen is the length of a handshake nonce.
	NonceLen = 32
	// MaxReplicaID bounds a replica id in the handshake.
	MaxReplicaID = 128
	// MaxPresenceKeys is the most keys one presence frame carries.
	MaxPresenceKeys = (MaxBody - 1) / KeyLen

	// Presence ops.
	PresenceHere byte = 1 // the keys now have a connection on the sender
	PresenceGone byte = 2 // the keys no longer do

	// Proof roles.
	RoleRelay  = "relay"  // the side that accepted the link
	RoleDialer = "dialer" // the side that dialed it
)

// Nonce is a handshake nonce.
type Nonce [NonceLen]byte

// NewNonce returns a fresh random nonce.
func NewNonce() Nonce {
	var n Nonce
	rand.Read(n[:])
	return n
}

func (n Nonce) String() string { return base64.StdEncoding.EncodeToString(n[:]) }

// ParseNonce decodes a nonce header.
func ParseNonce(s string) (Nonce, error) {
	var n Nonce
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != NonceLen {
		return n, fmt.Errorf("%s is not %d bytes in base64", HeaderNonce, NonceLen)
	}
	copy(n[:], b)
	return n, nil
}

// ValidReplicaID reports whether id may appear in the handshake: 1 to
// MaxReplicaID printable ASCII bytes without spaces.
func ValidReplicaID(id string) error {
	if id == "" || len(id) > MaxReplicaID {
		return fmt.Errorf("replica id must be 1 to %d bytes, got %d", MaxReplicaID, len(id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return errors.New("replica id must be printable ASCII without spaces")
		}
	}
	return nil
}

// LinkProof is the proof a side of a replica link gives: HMAC-SHA256 under
// meshKey of the role, both replica ids and both nonces, each
// length-prefixed so that no two inputs encode alike.
func LinkProof(meshKey []byte, role, dialerID, relayID string, dialerNonce, relayNonce Nonce) [ProofLen]byte {
	m := hmac.New(sha256.New, meshKey)
	var b []byte
	for _, s := range []string{"meshrelay replica link v1", role, dialerID, relayID} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, dialerNonce[:]...)
	b = append(b, relayNonce[:]...)
	m.Write(b)
	var p [ProofLen]byte
	m.Sum(p[:0])
	return p
}

// ProofEqual compares proofs in constant time.
func ProofEqual(a, b [ProofLen]byte) bool { return hmac.Equal(a[:], b[:]) }

// EncodeProof and DecodeProof carry a proof in a header.
func EncodeProof(p [ProofLen]byte) string { return base64.StdEncoding.EncodeToString(p[:]) }

func DecodeProof(s string) ([ProofLen]byte, error) {
	var p [ProofLen]byte
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ProofLen {
		return p, fmt.Errorf("%s is not %d bytes in base64", HeaderProof, ProofLen)
	}
	copy(p[:], b)
	return p, nil
}

// AppendMeshAuth appends a mesh-auth frame.
func AppendMeshAuth(dst []byte, proof [ProofLen]byte) []byte {
	dst = appendHeader(dst, FrameMeshAuth, ProofLen)
	return append(dst, proof[:]...)
}

// AppendPresence appends a presence frame; keys must hold 1 to
// MaxPresenceKeys keys.
func AppendPresence(dst []byte, op byte, keys []meshapi.Key) []byte {
	dst = appendHeader(dst, FramePresence, 1+KeyLen*len(keys))
	dst = append(dst, op)
	for _, k := range keys {
		dst = append(dst, k[:]...)
	}
	return dst
}

// AppendForward appends a forward frame: packet from src for dst.
func AppendForward(dst []byte, to, from meshapi.Key, packet []byte) []byte {
	dst = appendHeader(dst, FrameForward, 2*KeyLen+len(packet))
	dst = append(dst, to[:]...)
	dst = append(dst, from[:]...)
	return append(dst, packet...)
}

// ForwardLen is the encoded length of a forward frame of an n-byte packet.
func ForwardLen(n int) int { return HeaderLen + 2*KeyLen + n }

// decodeMesh interprets the body of a replica link frame.
func decodeMesh(t FrameType, body []byte) (Frame, error) {
	f := Frame{Type: t}
	bad := func(why string) (Frame, error) {
		return Frame{}, fmt.Errorf("%w: %v body of %d bytes: %s", ErrFrame, t, len(body), why)
	}
	switch t {
	case FrameMeshAuth:
		if len(body) != ProofLen {
			return bad(fmt.Sprintf("want %d", ProofLen))
		}
		copy(f.Proof[:], body)
	case FramePresence:
		n := (len(body) - 1) / KeyLen
		switch {
		case len(body) < 1+KeyLen || (len(body)-1)%KeyLen != 0 || n > MaxPresenceKeys:
			return bad(fmt.Sprintf("want an op and 1 to %d keys", MaxPresenceKeys))
		case body[0] != PresenceHere && body[0] != PresenceGone:
			return bad(fmt.Sprintf("unknown presence op %d", body[0]))
		}
		f.Op = body[0]
		f.Keys = make([]meshapi.Key, n)
		for i := range f.Keys {
			copy(f.Keys[i][:], body[1+i*KeyLen:])
		}
	case FrameForward:
		if len(body) < 2*KeyLen || len(body)-2*KeyLen > MaxPacket {
			return bad(fmt.Sprintf("want two keys and at most %d packet bytes", MaxPacket))
		}
		copy(f.Key[:], body)
		copy(f.Src[:], body[KeyLen:])
		f.Packet = body[2*KeyLen:]
	}
	return f, nil
}
