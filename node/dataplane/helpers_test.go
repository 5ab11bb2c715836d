package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
)

// testNode is one device of a test mesh, with the identity peers need.
type testNode struct {
	dev  *Device
	pub  meshapi.Key
	ipv4 netip.Addr
	ipv6 netip.Addr
}

var testPrefixes = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("fd7a:6d65:7368::/48")}

// testLogger logs at debug level into memory and prints the lines only if
// the test fails (DATAPLANE_TEST_LOG=1 prints them as they come).
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DATAPLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	buf := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("device log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestNode starts a userspace device with mesh addresses 100.64.0.n and
// fd7a:6d65:7368::n, listening on a free UDP port; it is closed at cleanup.
func newTestNode(t testing.TB, n int) *testNode {
	t.Helper()
	priv, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	v4 := netip.AddrFrom4([4]byte{100, 64, 0, byte(n)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd7a:6d65:7368::%x", n))
	dev, err := New(Config{
		PrivateKey: priv,
		Addresses:  []netip.Addr{v4, v6},
		Prefixes:   testPrefixes,
		Log:        testLogger(t).With("node", n),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return &testNode{dev: dev, pub: pub, ipv4: v4, ipv6: v6}
}

// loopbackEndpoint is the node's UDP port on 127.0.0.1: tests never send to
// any other host address.
func (n *testNode) loopbackEndpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.dev.ListenPort())
}

// asPeer describes n to other nodes, with the given candidate endpoints.
func (n *testNode) asPeer(endpoints ...netip.AddrPort) Peer {
	return Peer{
		PublicKey:  n.pub,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.ipv4, 32), netip.PrefixFrom(n.ipv6, 128)},
		Endpoints:  endpoints,
	}
}

// connect makes a and b peers of each other over loopback.
func connect(t testing.TB, a, b *testNode) {
	t.Helper()
	if err := a.dev.UpsertPeer(b.asPeer(b.loopbackEndpoint())); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.UpsertPeer(a.asPeer(a.loopbackEndpoint())); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) peerStatus(k meshapi.Key) (PeerStatus, bool) {
	for _, p := range n.dev.Peers() {
		if p.PublicKey == k {
			return p, true
		}
	}
	return PeerStatus{}, false
}

// startEcho runs a line echo on a free 127.0.0.1 port until the test ends:
// each line comes back prefixed with "name: ".
func startEcho(t testing.TB, name string) uint16 {
	t.Helper()
	return testnet.Serve(t, "tcp", "127.0.0.1:0", testnet.EchoLines(name))
}

// echoOnce dials address through dev, sends one line and returns the answer.
func echoOnce(ctx context.Context, dev *Device, address, line string) (string, error) {
	c, err := dev.DialContext(ctx, "tcp", address)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading echo: %w", err)
	}
	return reply[:len(reply)-1], nil
}

func withTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadUDPPort returns a loopback UDP port nobody listens on.
func deadUDPPort(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// initiationsSent is how many fresh handshake initiations d sent to peer k
// (its resends of the same one on request not counted).
func initiationsSent(d *Device, k meshapi.Key) int {
	a := d.bind.arbiter
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.peers[k]; p != nil {
		return p.initiations
	}
	return -1
}
