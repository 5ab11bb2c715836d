package relayproto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/meshinit/meshinit/meshapi"
)

func TestLinkProofBindsKeyRoleIdsAndNonces(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	dn, rn := NewNonce(), NewNonce()
	p := LinkProof(key, RoleDialer, "a", "b", dn, rn)
	if !ProofEqual(p, LinkProof(key, RoleDialer, "a", "b", dn, rn)) {
		t.Fatal("the same inputs give different proofs")
	}
	others := map[string][ProofLen]byte{
		"another key":          LinkProof([]byte("another key, just as long......."), RoleDialer, "a", "b", dn, rn),
		"the other role":       LinkProof(key, RoleRelay, "a", "b", dn, rn),
		"swapped ids":          LinkProof(key, RoleDialer, "b", "a", dn, rn),
		"ids split elsewhere":  LinkProof(key, RoleDialer, "ab", "", dn, rn),
		"another dialer nonce": LinkProof(key, RoleDialer, "a", "b", NewNonce(), rn),
		"swapped nonces":       LinkProof(key, RoleDialer, "a", "b", rn, dn),
	}
	for what, q := range others {
		if ProofEqual(p, q) {
			t.Errorf("%s gives the same proof", what)
		}
	}
	back, err := DecodeProof(EncodeProof(p))
	if err != nil || back != p {
		t.Fatalf("proof header round trip: %v", err)
	}
	n, err := ParseNonce(dn.String())
	if err != nil || n != dn {
		t.Fatalf("nonce header round trip: %v", err)
	}
}

func TestMeshFramesRoundTrip(t *testing.T) {
	keys := make([]meshapi.Key, MaxPresenceKeys)
	for i := range keys {
		keys[i][0], keys[i][1] = byte(i), byte(i>>8)
	}
	var b []byte
	b = AppendMeshAuth(b, [ProofLen]byte{1, 2})
	b = AppendPresence(b, PresenceHere, keys)
	b = AppendForward(b, keys[1], keys[2], bytes.Repeat([]byte{0xCD}, MaxPacket))
	r := NewReader(bytes.NewReader(b), 0)
	f, err := r.Next()
	if err != nil || f.Type != FrameMeshAuth || f.Proof != [ProofLen]byte{1, 2} {
		t.Fatalf("mesh-auth: %+v, %v", f.Type, err)
	}
	f, err = r.Next()
	if err != nil || f.Type != FramePresence || f.Op != PresenceHere || len(f.Keys) != MaxPresenceKeys || f.Keys[300] != keys[300] {
		t.Fatalf("presence: %v, %v", f.Type, err)
	}
	f, err = r.Next()
	if err != nil || f.Type != FrameForward || f.Key != keys[1] || f.Src != keys[2] || len(f.Packet) != MaxPacket {
		t.Fatalf("forward: %v, %v", f.Type, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	for name, bad := range map[string][]byte{
		"forward over 64 KiB": AppendForward(nil, keys[1], keys[2], make([]byte, MaxPacket+1)),
		"presence, no keys":   AppendPresence(nil, PresenceHere, nil),
		"presence, op 0":      AppendPresence(nil, 0, keys[:1]),
	} {
		if _, err := NewReader(bytes.NewReader(bad), 0).Next(); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}

// FuzzHandshakeHeaders: the replica handshake's header values (from
// whoever dials the relay) parse or are refused; never a panic, and what
// parses encodes back to the same value.
func FuzzHandshakeHeaders(f *testing.F) {
	f.Add(NewNonce().String())
	f.Add(EncodeProof([ProofLen]byte{1}))
	f.Add("replica-1")
	f.Add("")
	f.Add("a b")
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseNonce(s); err == nil && n.String() != s {
			t.Fatalf("nonce %q parses but encodes as %q", s, n.String())
		}
		if p, err := DecodeProof(s); err == nil && EncodeProof(p) != s {
			t.Fatalf("proof %q parses but encodes as %q", s, EncodeProof(p))
		}
		if ValidReplicaID(s) == nil && (len(s) == 0 || len(s) > MaxReplicaID || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' })) {
			t.Fatalf("replica id %q accepted", s)
		}
	})
}
