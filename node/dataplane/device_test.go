package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/testnet"
)

func TestHandshakeCompletesAndPeersReportIt(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	port := startEcho(t, "b")
	got, err := echoOnce(withTimeout(t, 10*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "hello")
	if err != nil {
		t.Fatalf("echo through the tunnel: %v", err)
	}
	if got != "b: hello" {
		t.Fatalf("echo = %q, want %q", got, "b: hello")
	}
	st, ok := a.peerStatus(b.pub)
	if !ok {
		t.Fatal("a does not list b among its peers")
	}
	if st.LastHandshake.IsZero() {
		t.Error("a reports no handshake with b after traffic flowed")
	}
	if st.Endpoint != b.loopbackEndpoint() {
		t.Errorf("a's endpoint for b = %v, want %v", st.Endpoint, b.loopbackEndpoint())
	}
	if st.TxBytes == 0 || st.RxBytes == 0 {
		t.Errorf("a's counters for b: tx %d rx %d, want both > 0", st.TxBytes, st.RxBytes)
	}
}

func TestTCPBothWaysThroughDialAndForward(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	for _, n := range []*testNode{a, b} {
		if err := n.dev.Forward(nil); err != nil {
			t.Fatal(err)
		}
	}
	portA, portB := startEcho(t, "a"), startEcho(t, "b")
	ctx := withTimeout(t, 20*time.Second)
	cases := []struct {
		name string
		from *Device
		to   netip.AddrPort
		want string
	}{
		{"a to b over IPv4", a.dev, netip.AddrPortFrom(b.ipv4, portB), "b: x"},
		{"b to a over IPv4", b.dev, netip.AddrPortFrom(a.ipv4, portA), "a: x"},
		{"a to b over IPv6", a.dev, netip.AddrPortFrom(b.ipv6, portB), "b: x"},
		{"b to a over IPv6", b.dev, netip.AddrPortFrom(a.ipv6, portA), "a: x"},
	}
	for _, c := range cases {
		got, err := echoOnce(ctx, c.from, c.to.String(), "x")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestHTTPOverTheMesh(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served %s to %s", r.URL.Path, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	client := &http.Client{Transport: &http.Transport{DialContext: a.dev.DialContext}, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for _, host := range []string{b.ipv4.String(), "[" + b.ipv6.String() + "]"} {
		resp, err := client.Get("http://" + host + ":" + strconv.Itoa(port) + "/path")
		if err != nil {
			t.Fatalf("GET via %s: %v", host, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The local server sees the forwarder's loopback connection.
		if !strings.HasPrefix(string(body), "served /path to 127.0.0.1:") {
			t.Errorf("GET via %s: body %q", host, body)
		}
	}
}

// A transfer big enough to exercise segmentation offload (64 KiB packets cut
// into MTU-sized segments) and receive coalescing, checked byte for byte in
// both directions at once.
func TestBulkTransferBothWaysIsIntact(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	want := sha256.Sum256(payload)

	// The server hashes what arrives and sends back its own copy of the
	// payload while still receiving.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverGot := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		h := sha256.New()
		io.Copy(h, c)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		serverGot <- sum
	}()

	ctx := withTimeout(t, 60*time.Second)
	c, err := a.dev.DialContext(ctx, "tcp", netip.AddrPortFrom(b.ipv4, uint16(ln.Addr().(*net.TCPAddr).Port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		writeErr <- err
	}()
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		t.Fatalf("reading from b: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("writing to b: %v", err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("data from b arrived corrupted")
	}
	select {
	case got := <-serverGot:
		if got != want {
			t.Error("data to b arrived corrupted")
		}
	case <-ctx.Done():
		t.Fatal("server did not finish")
	}
}

func TestPeerAddedLaterIsReachableWithoutRestart(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	portB := startEcho(t, "b")
	ctx := withTimeout(t, 20*time.Second)

	// An open connection to b must survive c's arrival.
	conn, err := a.dev.DialContext(ctx, "tcp", netip.AddrPortFrom(b.ipv4, portB).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lineVia := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatalf("writing on the open connection: %v", err)
		}
		buf := make([]byte, len("b: ")+len(line)+1)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("reading on the open connection: %v", err)
		}
		return strings.TrimSpace(string(buf))
	}
	if got := lineVia("before"); got != "b: before" {
		t.Fatalf("got %q", got)
	}

	c := newTestNode(t, 3)
	if err := c.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	connect(t, a, c)
	portC := startEcho(t, "c")
	got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(c.ipv4, portC).String(), "hi")
	if err != nil {
		t.Fatalf("a to the late peer c: %v", err)
	}
	if got != "c: hi" {
		t.Errorf("got %q from c", got)
	}
	if got := lineVia("after"); got != "b: after" {
		t.Errorf("open connection to b after adding c: got %q", got)
	}
}

func TestRemovedPeerIsUnreachable(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	port := startEcho(t, "b")
	target := netip.AddrPortFrom(b.ipv4, port).String()
	if _, err := echoOnce(withTimeout(t, 10*time.Second), a.dev, target, "x"); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	if err := a.dev.RemovePeer(b.pub); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.peerStatus(b.pub); ok {
		t.Error("b is still listed after RemovePeer")
	}
	// No peer owns b's address any more: the packet filter refuses the
	// SYN on the way out, so the dial fails at once (not after a timeout).
	_, err := echoOnce(withTimeout(t, 10*time.Second), a.dev, target, "x")
	if err == nil {
		t.Fatal("b still reachable after RemovePeer")
	}
	if !isRefused(err) {
		t.Errorf("dial after removal failed with %v, want connection refused", err)
	}
	// Removing again, or an unknown key, is fine.
	if err := a.dev.RemovePeer(b.pub); err != nil {
		t.Errorf("second RemovePeer: %v", err)
	}
}

// The first candidate is a dead loopback port, the second the real one; b
// does not know a's endpoint, so only a's candidates can make the tunnel.
// Both ways round: a starting the handshake (larger key), and a asking b
// to start it (smaller key; b then learns a's address from the request).
func TestEndpointCandidatesFindTheLiveOne(t *testing.T) {
	for _, aInitiates := range []bool{true, false} {
		t.Run(fmt.Sprintf("a_initiates=%v", aInitiates), func(t *testing.T) {
			a, b := newTestNode(t, 1), newTestNode(t, 2)
			for (bytes.Compare(a.pub[:], b.pub[:]) > 0) != aInitiates {
				b.dev.Close()
				b = newTestNode(t, 2)
			}
			if err := b.dev.UpsertPeer(a.asPeer()); err != nil { // no endpoint: b cannot start on its own
				t.Fatal(err)
			}
			dead := deadUDPPort(t)
			if err := a.dev.UpsertPeer(b.asPeer(dead, b.loopbackEndpoint())); err != nil {
				t.Fatal(err)
			}
			if err := b.dev.Forward(nil); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			port := startEcho(t, "b")
			if _, err := echoOnce(withTimeout(t, 20*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "x"); err != nil {
				t.Fatalf("echo with a dead first candidate: %v", err)
			}
			t.Logf("first echo with a dead first candidate after %v", time.Since(start))
			st, _ := a.peerStatus(b.pub)
			if st.LastHandshake.IsZero() {
				t.Error("no handshake recorded")
			}
			if st.Endpoint != b.loopbackEndpoint() {
				t.Errorf("a sticks to %v, want the live candidate %v", st.Endpoint, b.loopbackEndpoint())
			}
			// The same candidates again change nothing: the peer keeps its endpoint.
			if err := a.dev.UpsertPeer(b.asPeer(dead, b.loopbackEndpoint())); err != nil {
				t.Fatal(err)
			}
			if st, _ := a.peerStatus(b.pub); st.Endpoint != b.loopbackEndpoint() {
				t.Errorf("after an identical upsert the endpoint is %v, want %v", st.Endpoint, b.loopbackEndpoint())
			}
		})
	}
}

func TestForwardOnlyListedPorts(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	open, closed := startEcho(t, "open"), startEcho(t, "closed")
	if err := b.dev.Forward([]uint16{open}); err != nil {
		t.Fatal(err)
	}
	ctx := withTimeout(t, 20*time.Second)
	if got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, open).String(), "x"); err != nil || got != "open: x" {
		t.Fatalf("listed port: %q, %v", got, err)
	}
	_, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, closed).String(), "x")
	if !isRefused(err) {
		t.Errorf("unlisted port: err = %v, want connection refused", err)
	}
	// Replacing the list opens the other port.
	if err := b.dev.Forward([]uint16{closed}); err != nil {
		t.Fatal(err)
	}
	if got, err := echoOnce(ctx, a.dev, netip.AddrPortFrom(b.ipv4, closed).String(), "x"); err != nil || got != "closed: x" {
		t.Fatalf("newly listed port: %q, %v", got, err)
	}
}

func TestForwardToClosedLocalPortIsRefused(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connect(t, a, b)
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
	port := testnet.ClosedPort(t)
	_, err := echoOnce(withTimeout(t, 20*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "x")
	if !isRefused(err) {
		t.Errorf("err = %v, want connection refused", err)
	}
}

func isRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection was refused"))
}

func TestDialNeedsAnIPAddress(t *testing.T) {
	a := newTestNode(t, 1)
	_, err := a.dev.DialContext(context.Background(), "tcp", "web.mesh:80")
	if err == nil || !strings.Contains(err.Error(), "resolve mesh names first") {
		t.Errorf("dial by name: err = %v, want a message saying to resolve names first", err)
	}
}

func TestCloseIsFinalAndIdempotent(t *testing.T) {
	a := newTestNode(t, 1)
	if err := a.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.dev.DialContext(context.Background(), "tcp", "100.64.0.2:80"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial after Close: %v, want net.ErrClosed", err)
	}
	if err := a.dev.UpsertPeer(a.asPeer()); err == nil {
		t.Error("UpsertPeer after Close succeeded")
	}
}

func TestLocalEndpointsCarryThePort(t *testing.T) {
	a := newTestNode(t, 1)
	eps, err := a.dev.LocalEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) == 0 {
		t.Fatal("no local endpoints")
	}
	loopbackOnly := true
	for _, ep := range eps {
		if ep.Port() != a.dev.ListenPort() {
			t.Errorf("endpoint %v: port is not the device's %d", ep, a.dev.ListenPort())
		}
		if ep.Addr() == a.ipv4 || ep.Addr() == a.ipv6 {
			t.Errorf("endpoint %v is a mesh address", ep)
		}
		if !ep.Addr().IsLoopback() {
			loopbackOnly = false
		}
	}
	ifaddrs, _ := net.InterfaceAddrs()
	hasOther := false
	for _, ia := range ifaddrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			hasOther = true
		}
	}
	if hasOther && loopbackOnly {
		t.Errorf("endpoints %v are loopback only although the host has other addresses", eps)
	}
	if !hasOther && !loopbackOnly {
		t.Errorf("endpoints %v: want loopback when it is all the host has", eps)
	}
}

func TestUpsertPeerRejectsBadInput(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	if err := a.dev.UpsertPeer(Peer{AllowedIPs: b.asPeer().AllowedIPs}); err == nil {
		t.Error("zero key accepted")
	}
	if err := a.dev.UpsertPeer(Peer{PublicKey: b.pub}); err == nil || !strings.Contains(err.Error(), "allowed IPs") {
		t.Errorf("no allowed IPs: err = %v", err)
	}
	// Unusable endpoints are skipped, not fatal.
	p := b.asPeer(netip.MustParseAddrPort("0.0.0.0:1"), b.loopbackEndpoint())
	if err := a.dev.UpsertPeer(p); err != nil {
		t.Errorf("upsert with one unusable endpoint: %v", err)
	}
}

// Both nodes add each other at the same moment and both dial at once, so
// their handshake initiations cross. Without arbitration wireguard-go
// rejects both answers and nothing moves until its retry 5 s (or 15 s)
// later. The retry is a fresh initiation from the larger key (the only one
// that initiates), so a crossing resolved in the first round trip is one
// where that side sent exactly one: counted, not timed, so a loaded machine
// cannot fail it. Repeated because the crossing depends on timing.
func TestCrossingHandshakesResolveAtOnce(t *testing.T) {
	for i := range 8 {
		a, b := newTestNode(t, 1), newTestNode(t, 2)
		for _, n := range []*testNode{a, b} {
			if err := n.dev.Forward(nil); err != nil {
				t.Fatal(err)
			}
		}
		portA, portB := startEcho(t, "a"), startEcho(t, "b")
		start := make(chan struct{})
		errs := make(chan error, 2)
		run := func(self, other *testNode, port uint16) {
			<-start
			if err := self.dev.UpsertPeer(other.asPeer(other.loopbackEndpoint())); err != nil {
				errs <- err
				return
			}
			_, err := echoOnce(withTimeout(t, 20*time.Second), self.dev, netip.AddrPortFrom(other.ipv4, port).String(), "x")
			errs <- err
		}
		go run(a, b, portB)
		go run(b, a, portA)
		close(start)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: simultaneous start: %v", i, err)
			}
		}
		larger, smaller := a, b
		if bytes.Compare(a.pub[:], b.pub[:]) < 0 {
			larger, smaller = b, a
		}
		if n := initiationsSent(larger.dev, smaller.pub); n != 1 {
			t.Fatalf("round %d: the larger key sent %d fresh initiations, want 1 (more means the crossing waited for a retry)", i, n)
		}
		a.dev.Close()
		b.dev.Close()
	}
}
