package dataplane

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/meshapi"
)

// relayRig is a real relay server on loopback whose clients authenticate
// with "Bearer <their public key in hex>" (the coordinator's node secrets
// are tested in coordinator/relay).
type relayRig struct {
	srv *relay.Server
	url string
	tls *tls.Config // clients' TLS config for an HTTPS rig
	// current, when set, is the node's coordinator URL (RelayConfig.WatchURL):
	// a node whose coordinator may change.
	current *movingURL
}

// movingURL stands for the control client's current coordinator: set
// moves it and signals the move as controlclient.Client.WatchURL does.
type movingURL struct {
	mu      sync.Mutex
	url     string
	changed chan struct{}
	watches int // WatchURL calls: each is one look at the URL
}

func newMovingURL(u string) *movingURL { return &movingURL{url: u, changed: make(chan struct{})} }

func (m *movingURL) WatchURL() (string, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watches++
	return m.url, m.changed
}

func (m *movingURL) set(u string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.url = u
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *movingURL) looks() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.watches
}

// newTLSRelayRig serves the relay over HTTPS with HTTP/2 offered too (the
// client must pick HTTP/1.1 to upgrade).
func newTLSRelayRig(t testing.TB) *relayRig {
	rig := newRelayRig(t)
	hs := httptest.NewUnstartedServer(rig.srv)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	pool := x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	rig.url, rig.tls = hs.URL, &tls.Config{RootCAs: pool}
	return rig
}

func newRelayRig(t testing.TB) *relayRig {
	srv := relay.New(relay.Config{Authenticate: tokenAuth})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return &relayRig{srv: srv, url: hs.URL}
}

// tokenAuth takes "Bearer <public key in hex>" as a node's secret.
func tokenAuth(r *http.Request) (meshapi.Key, *meshapi.Error) {
	var k meshapi.Key
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := k.UnmarshalText([]byte(tok)); err != nil {
		return k, &meshapi.Error{Status: 401, Code: meshapi.ErrUnauthorized, Message: "bad test token"}
	}
	return k, nil
}

// newRelayNode is newTestNode with the rig's relay and, when advertise is
// set, the node's loopback endpoint as its only own candidate. It returns
// once the relay connection is up.
func newRelayNode(t testing.TB, n int, rig *relayRig, advertise bool, websocket bool) *testNode {
	t.Helper()
	tn := startRelayNode(t, n, rig, advertise, websocket)
	waitFor(t, 20*time.Second, "relay connected", func() bool { return rig.srv.Connected(tn.pub) })
	return tn
}

// newRelayNodeNoWait returns at once, with the relay still connecting.
func newRelayNodeNoWait(t testing.TB, n int, rig *relayRig) *testNode {
	return startRelayNode(t, n, rig, false, false)
}

func startRelayNode(t testing.TB, n int, rig *relayRig, advertise bool, websocket bool) *testNode {
	t.Helper()
	priv, _ := GeneratePrivateKey()
	pub, _ := PublicKey(priv)
	v4 := netip.AddrFrom4([4]byte{100, 64, 0, byte(n)})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd7a:6d65:7368::%x", n))
	cfg := Config{
		PrivateKey: priv, Addresses: []netip.Addr{v4, v6}, Prefixes: testPrefixes, Log: testLogger(t).With("node", n),
		Relay: &RelayConfig{URL: rig.url, TLS: rig.tls, WebSocket: websocket, Authorization: func() (string, error) {
			b, _ := pub.MarshalText()
			return "Bearer " + string(b), nil
		}},
		AdvertiseEndpoints: func(port uint16) []netip.AddrPort {
			if !advertise {
				return nil
			}
			return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
		},
	}
	if rig.current != nil {
		cfg.Relay.WatchURL = rig.current.WatchURL
	}
	dev, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return &testNode{dev: dev, pub: pub, ipv4: v4, ipv6: v6}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelayCarriesTrafficWithoutEndpoints: two nodes that know no UDP
// endpoint of each other talk through the relay from the first packet,
// over the plain upgrade and over WebSocket, on HTTP and on HTTPS, and a
// 4 MiB transfer arrives intact.
func TestRelayCarriesTrafficWithoutEndpoints(t *testing.T) {
	for _, tc := range []struct{ ws, https bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		ws := tc.ws
		t.Run(fmt.Sprintf("websocket=%v,https=%v", tc.ws, tc.https), func(t *testing.T) {
			rig := newRelayRig(t)
			if tc.https {
				rig = newTLSRelayRig(t)
			}
			a, b := newRelayNode(t, 1, rig, false, ws), newRelayNode(t, 2, rig, false, ws)
			peerOverRelay(t, a, b)
			transfer(t, a, b, 4<<20)
			if p := a.dev.Path(b.pub); p.Kind != PathRelay {
				t.Errorf("path %+v, want relay", p)
			}
			if rs, _ := a.dev.Relay(); (rs.Kind == "websocket") != ws {
				t.Errorf("relay kind %q", rs.Kind)
			}
		})
	}
}

// TestPathTurnsDirectAndConnectionSurvives: with the relay and reachable
// endpoints, the path starts on the relay and turns direct once the probes
// answer; a connection opened before the switch keeps working after it.
func TestPathTurnsDirectAndConnectionSurvives(t *testing.T) {
	rig := newRelayRig(t)
	a, b := newRelayNode(t, 1, rig, true, false), newRelayNode(t, 2, rig, true, false)
	// No map endpoints: only call-me-maybe over the relay tells them.
	a.dev.UpsertPeer(b.asPeer())
	b.dev.UpsertPeer(a.asPeer())
	b.dev.Forward(nil)
	port := startEcho(t, "b")
	c, err := a.dev.DialContext(withTimeout(t, 20*time.Second), "tcp", netip.AddrPortFrom(b.ipv4, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(line string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintln(c, line)
		got, err := r.ReadString('\n')
		if err != nil || !strings.Contains(got, line) {
			t.Fatalf("echo %q: %q %v", line, got, err)
		}
	}
	echo("before")
	waitFor(t, 20*time.Second, "a direct path", func() bool {
		echo("tick") // traffic keeps the peer active
		return a.dev.Path(b.pub).Kind == PathDirect && b.dev.Path(a.pub).Kind == PathDirect
	})
	if ep := a.dev.Path(b.pub).Endpoint; ep != b.loopbackEndpoint() {
		t.Errorf("direct endpoint %v, want %v", ep, b.loopbackEndpoint())
	}
	echo("after")
}

// TestRelayFallsBackToWebSocket: in front of the relay sits something that
// passes only WebSocket upgrades (as many ingresses do); the client's plain
// upgrade is refused, it tries WebSocket, and keeps using it.
func TestRelayFallsBackToWebSocket(t *testing.T) {
	rig := newRelayRig(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "this ingress passes WebSocket only", http.StatusBadRequest)
			return
		}
		rig.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	rig.url = hs.URL
	a, b := newRelayNode(t, 1, rig, false, false), newRelayNode(t, 2, rig, false, false)
	a.dev.UpsertPeer(b.asPeer())
	b.dev.UpsertPeer(a.asPeer())
	b.dev.Forward(nil)
	port := startEcho(t, "b")
	if _, err := echoOnce(withTimeout(t, 20*time.Second), a.dev, netip.AddrPortFrom(b.ipv4, port).String(), "x"); err != nil {
		t.Fatal(err)
	}
	if rs, _ := a.dev.Relay(); rs.Kind != "websocket" || rs.State != "connected" {
		t.Errorf("relay status %+v, want connected over websocket", rs)
	}
}
