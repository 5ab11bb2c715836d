package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meshinit/meshinit/policy"
)

// A protected port (meshinit's own listener) is refused to peers with a
// reset even though Forward forwards every port, while the port next to it
// is forwarded.
func TestProtectedPortsAreRefusedToPeers(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	own, app := startEcho(t, "own"), startEcho(t, "app")
	b.dev.ProtectPorts([]uint16{own})
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	ctx := withTimeout(t, 20*time.Second)
	if got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, app).String(), "x"); err != nil || got != "app: x" {
		t.Fatalf("forwarded port: %q, %v", got, err)
	}
	for _, addr := range []netip.Addr{b.ipv4, b.ipv6} {
		_, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(addr, own).String(), "x")
		if !isRefused(err) {
			t.Errorf("protected port at %v: err = %v, want connection refused", addr, err)
		}
	}
	if d := b.dev.FilterStats().Drops["own_listener"]; d < 2 {
		t.Errorf("own_listener drops = %d", d)
	}
}

// A local server can tell a connection forwarded from the mesh from a
// local one: the proxy refuses the former.
func TestFromMeshTellsForwardedConnections(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan netip.AddrPort, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			defer c.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ctx := withTimeout(t, 20*time.Second)
	mc, err := a.dev.DialContext(ctx, "tcp", netip.AddrPortFrom(b.ipv4, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if from := <-accepted; !b.dev.FromMesh(from) {
		t.Errorf("a forwarded connection from %v is not reported as from the mesh", from)
	}
	lc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if from := <-accepted; b.dev.FromMesh(from) {
		t.Errorf("a local connection from %v is reported as from the mesh", from)
	}
	if !b.dev.FromMesh(netip.AddrPortFrom(a.ipv4, 1234)) || b.dev.FromMesh(netip.AddrPortFrom(b.ipv4, 1234)) {
		t.Error("mesh source addresses: a peer's must count as the mesh, the node's own not")
	}
}

// With a policy, a peer reaches only what its tags are granted, a refused
// connection fails at once (reset), and the node's own outbound
// connections to that peer still work (replies pass).
func TestPolicyFiltersInboundByPeerTags(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	pa, pb := a.asPeer(a.loopbackEndpoint()), b.asPeer(b.loopbackEndpoint())
	pa.Tags = []string{"tag:ci"}
	if err := a.dev.UpsertPeer(pb); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.UpsertPeer(pa); err != nil {
		t.Fatal(err)
	}
	granted, other := startEcho(t, "granted"), startEcho(t, "other")
	p, err := policy.Load([]byte(`{"grants": [{"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:` + itoa(granted) + `"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b.dev.SetPolicy("7", p.InboundRules([]string{"tag:db"}))
	a.dev.SetPolicy("7", p.InboundRules(nil))
	for _, n := range []*testNode{a, b} {
		if err := n.dev.Forward(nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx := withTimeout(t, 20*time.Second)
	if got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, granted).String(), "x"); err != nil || got != "granted: x" {
		t.Fatalf("granted port: %q, %v", got, err)
	}
	begin := time.Now()
	_, err = echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, other).String(), "x")
	if !isRefused(err) {
		t.Errorf("port without a grant: err = %v, want connection refused", err)
	}
	t.Logf("refused after %v", time.Since(begin))
	// The reverse direction has no grant.
	if _, err := echoOnce(ctx, b.dev, netip.AddrPortFrom(a.ipv4, granted).String(), "x"); !isRefused(err) {
		t.Errorf("reverse direction: err = %v, want connection refused", err)
	}
	st := b.dev.FilterStats()
	if st.PolicyVersion != "7" || !st.Enforcing || st.Drops["policy"] == 0 {
		t.Errorf("stats %+v", st)
	}
	// Removing the policy opens everything again, for new connections at once.
	b.dev.SetPolicy("", nil)
	if got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, other).String(), "y"); err != nil || got != "other: y" {
		t.Fatalf("without a policy: %q, %v", got, err)
	}
}

// Denied UDP gets an ICMP answer the sender's stack turns into an error
// on its connected socket, instead of silence.
func TestPolicyRefusesUDPWithAnAnswer(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	b.dev.SetPolicy("1", []policy.Rule{})
	c, err := a.dev.DialContext(withTimeout(t, 10*time.Second), "udp", netip.AddrPortFrom(b.ipv4, 5353).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var readErr error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("q")); err != nil {
			readErr = err
			break
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, readErr = c.Read(make([]byte, 10))
		if readErr != nil && !isTimeout(readErr) {
			break
		}
	}
	t.Logf("error on the sender: %v", readErr)
	if !isRefused(readErr) {
		t.Errorf("the sender never learnt of the refusal (last error %v); drops %v", readErr, b.dev.FilterStats().Drops)
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
