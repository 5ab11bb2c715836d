package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestFirstPacketsWaitForTheRelayConnection: peers added and dialled right
// after the devices start, before their relay connections are up: the
// first handshake goes through once the relay connects, without waiting
// for WireGuard's 5 s retry (counted: one fresh initiation from the
// larger key).
func TestFirstPacketsWaitForTheRelayConnection(t *testing.T) {
	rig := newRelayRig(t)
	a, b := newRelayNodeNoWait(t, 1, rig), newRelayNodeNoWait(t, 2, rig)
	a.dev.UpsertPeer(b.asPeer())
	b.dev.UpsertPeer(a.asPeer())
	b.dev.Forward(nil)
	port := startEcho(t, "b")
	if _, err := echoOnce(withTimeout(t, 20*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "x"); err != nil {
		t.Fatal(err)
	}
	larger, smaller := a, b
	if bytes.Compare(a.pub[:], b.pub[:]) < 0 {
		larger, smaller = b, a
	}
	if n := initiationsSent(larger.dev, smaller.pub); n != 1 {
		t.Errorf("the larger key sent %d fresh initiations, want 1 (more means a packet waited for WireGuard's retry)", n)
	}
}
