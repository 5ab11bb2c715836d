package dataplane

import (
	"bytes"
	"crypto/ecdh"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

func testPair(t testing.TB) (privA, privB *ecdh.PrivateKey, pubA, pubB meshapi.Key) {
	for _, p := range []**ecdh.PrivateKey{&privA, &privB} {
		k, err := GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		*p, _ = ecdh.X25519().NewPrivateKey(k[:])
	}
	copy(pubA[:], privA.PublicKey().Bytes())
	copy(pubB[:], privB.PublicKey().Bytes())
	return
}

func TestPathMessagesAreBoundToBothKeys(t *testing.T) {
	privA, privB, pubA, pubB := testPair(t)
	kAB, _ := pairKey(privA, pubB)
	kBA, _ := pairKey(privB, pubA)
	if kAB != kBA {
		t.Fatal("the two sides derive different pair keys")
	}
	msgs := []pathMsg{
		{typ: msgPing, from: pubA, txid: [12]byte{1}, ts: 1234},
		{typ: msgPong, from: pubA, txid: [12]byte{2}, observed: netip.MustParseAddrPort("198.18.0.1:41641")},
		{typ: msgCallMeMaybe, from: pubA, ts: 99, addrs: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2")}},
		{typ: msgHandshakeRequest, from: pubA, ts: 7},
	}
	for _, m := range msgs {
		pkt := m.encode(&kAB, pubB)
		got, err := decodePathMsg(pkt, &kBA, pubB)
		if err != nil {
			t.Fatalf("type %d: %v", m.typ, err)
		}
		if got.typ != m.typ || got.from != m.from || got.txid != m.txid || got.ts != m.ts || got.observed != m.observed || len(got.addrs) != len(m.addrs) {
			t.Fatalf("type %d: decoded %+v, want %+v", m.typ, got, m)
		}
		// Reflected back to its sender, it does not verify.
		if _, err := decodePathMsg(pkt, &kAB, pubA); err == nil {
			t.Errorf("type %d: a message verified for its own sender", m.typ)
		}
		// Any bit flipped breaks it.
		for i := range pkt {
			bad := bytes.Clone(pkt)
			bad[i] ^= 0x10
			if _, err := decodePathMsg(bad, &kBA, pubB); err == nil {
				t.Fatalf("type %d: flipping byte %d still verifies", m.typ, i)
			}
		}
	}
}

func TestFreshnessRefusesReplays(t *testing.T) {
	var f freshness
	if !f.accept(100_000, [16]byte{1}) {
		t.Fatal("first message refused")
	}
	if f.accept(100_000, [16]byte{1}) {
		t.Error("exact replay accepted")
	}
	if !f.accept(95_000, [16]byte{2}) {
		t.Error("a slightly older message (reordered) refused")
	}
	if f.accept(100_000-replayWindow-1, [16]byte{3}) {
		t.Error("a message older than the window accepted")
	}
}

func FuzzDecodePathMsg(f *testing.F) {
	privA, privB, pubA, pubB := testPair(f)
	k, _ := pairKey(privA, pubB)
	f.Add((&pathMsg{typ: msgPing, from: pubA, ts: 1}).encode(&k, pubB))
	f.Add((&pathMsg{typ: msgCallMeMaybe, from: pubA, addrs: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:1")}}).encode(&k, pubB))
	f.Add([]byte("MSHQ0123456789012345678901234567890123456789"))
	_ = privB
	f.Fuzz(func(t *testing.T, p []byte) {
		if !isPathMsg(p) {
			return
		}
		m, err := decodePathMsg(p, &k, pubB)
		if err == nil && len(m.addrs) > maxCallMeMaybe {
			t.Fatalf("%d addresses decoded", len(m.addrs))
		}
	})
}

// The old handshake request ("MSHQ" + a key) was unauthenticated: sent
// from any socket, it made a node send an initiation to an address the
// sender chose, and for a peer without map endpoints it set the peer's
// endpoint and expired its keypairs. TestSpoofedPathPacketsChangeNothing
// sends that datagram, and a forged path message, from a real UDP socket
// claiming to be a peer: the node answers nothing, sends no initiation,
// and the peer's path stays as it was.
func TestSpoofedPathPacketsChangeNothing(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	for bytes.Compare(b.pub[:], a.pub[:]) < 0 { // b must be the one that would answer requests
		b.dev.Close()
		b = newTestNode(t, 2)
	}
	if err := b.dev.UpsertPeer(a.asPeer()); err != nil { // no endpoints for a
		t.Fatal(err)
	}
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	target := net.UDPAddrFromAddrPort(b.loopbackEndpoint())

	oldRequest := append([]byte("MSHQ"), a.pub[:]...)
	forged := (&pathMsg{typ: msgHandshakeRequest, from: a.pub, ts: time.Now().UnixMilli()}).encode(&[32]byte{}, b.pub)
	forgedPing := (&pathMsg{typ: msgPing, from: a.pub, ts: time.Now().UnixMilli()}).encode(&[32]byte{9}, b.pub)
	for _, pkt := range [][]byte{oldRequest, forged, forgedPing} {
		if _, err := attacker.WriteToUDP(pkt, target); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until b has looked at all three (counted), then check that
	// nothing came of them.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := b.dev.PathStats()
		if st.UnknownSource >= 1 && st.RejectedPathMessages >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spoofed packets not all seen: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.dev.bind.arbiter.mu.Lock()
	initiations := b.dev.bind.arbiter.peers[a.pub].initiations
	b.dev.bind.arbiter.mu.Unlock()
	if initiations != 0 {
		t.Errorf("spoofed packets made b send %d initiations", initiations)
	}
	if p := b.dev.Path(a.pub); p.Kind != PathNone || p.Endpoint.IsValid() {
		t.Errorf("a's path changed to %+v", p)
	}
	attacker.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // a bounded look for any answer
	if n, from, err := attacker.ReadFromUDP(make([]byte, 2048)); err == nil {
		t.Errorf("the spoofer got a %d-byte answer from %v", n, from)
	}
}

// TestIdlePeersExchangeNothing: two peers that know each other but carry
// no traffic send each other no packet at all (no handshake, no
// keepalive, no probe); the first packet of an app then goes through.
func TestIdlePeersExchangeNothing(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	// Three probe ticks with nothing to do. The prober is the only thing
	// that could send on its own; it runs every probeTick.
	time.Sleep(3 * probeTick)
	for _, n := range []*testNode{a, b} {
		for _, p := range n.dev.Peers() {
			if p.TxBytes != 0 || p.RxBytes != 0 || !p.LastHandshake.IsZero() {
				t.Fatalf("idle peer exchanged traffic: %+v", p)
			}
		}
		n.dev.bind.mu.RLock()
		for _, pp := range n.dev.bind.peers {
			if len(pp.pings) != 0 || !pp.lastSend.IsZero() {
				t.Errorf("idle peer was probed")
			}
		}
		n.dev.bind.mu.RUnlock()
	}
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	port := startEcho(t, "b")
	if _, err := echoOnce(withTimeout(t, 20*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "x"); err != nil {
		t.Fatalf("first traffic after idling: %v", err)
	}
}
