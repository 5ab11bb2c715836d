// Package relay_test runs real meshinit nodes in two sites, each behind
// its own NAT router, with meshcoord (and its relay and STUN responder) on
// a "public" network: the relay carries traffic when UDP cannot pass, the
// path turns direct when it can, and falls back when it stops.
package relay_test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/netns"
	"github.com/meshinit/meshinit/internal/testnet"
)

func TestMain(m *testing.M) { harness.Main(m) }

const coordPort = "8480"

// mesh is a topology with meshcoord in pub and a node in each site.
type mesh struct {
	tp    *topology
	coord *coordtest.Coordinator
	key   string
	a, b  *node
	bIP   string // b's mesh IPv4
}

func startMesh(t *testing.T, tp *topology, envA ...string) *mesh {
	t.Helper()
	coord := coordtest.Start(t, coordtest.Options{Netns: tp.pub, Listen: coordIP + ":" + coordPort,
		Args: []string{"--stun-listen", coordIP + ":3478"}})
	m := &mesh{tp: tp, coord: coord, key: coord.CreateKey(t, "--ephemeral", "--reusable")}
	m.a = startNode(t, tp.siteA, coord.URL, m.key, "a", envA...)
	m.b = startNode(t, tp.siteB, coord.URL, m.key, "b")
	m.a.waitUp(1)
	st := m.b.waitUp(1)
	m.bIP = st.IPv4.String()
	return m
}

// serve listens in site B on the mesh (all addresses) and handles each
// connection with h.
func (m *mesh) serve(t *testing.T, h func(net.Conn)) string {
	t.Helper()
	ln, err := netns.Listen(m.tp.siteB, "tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go testnet.ServeListener(ln, h)
	return net.JoinHostPort(m.bIP, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
}

// dial connects from site A.
func (m *mesh) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := netns.Dial(m.tp.siteA, "tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("dial %s from site A: %v", addr, err)
	}
	return c
}

// transfer sends size bytes from site A to a sink in site B and checks
// they arrive intact; during calls hook once a quarter has gone.
func (m *mesh) transfer(t *testing.T, sink string, size int, during func()) {
	t.Helper()
	c := m.dial(t, sink)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	h := sha256.New()
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		for i := range chunk {
			chunk[i] = byte(sent/len(chunk) + i)
		}
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		if during != nil && sent >= size/4 {
			during()
			during = nil
		}
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the sink's digest: %v", err)
	}
	if want := fmt.Sprintf("%x", h.Sum(nil)); string(got) != want {
		t.Fatalf("sink digest %q, want %s: the stream was damaged", got, want)
	}
}

func waitPath(t *testing.T, n *node, kind string, limit time.Duration, traffic func()) {
	t.Helper()
	harness.Eventually(t, limit, n.name+" path "+kind, func() (bool, string) {
		if traffic != nil {
			traffic()
		}
		p := n.path()
		return p.Path == kind, fmt.Sprintf("path %q (%s)", p.Path, p.PathReason)
	})
}

// 1. UDP between the sites is dropped: HTTP and 64 MiB go through the relay.
func TestRelayOnlyBetweenSitesWithoutUDP(t *testing.T) {
	harness.Integration(t)
	tp := newTopology(t)
	tp.dropUDPBetweenSites()
	m := startMesh(t, tp)

	web := m.serve(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		body := "hello " + req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
	resp, err := netns.HTTPClient(tp.siteA, 30*time.Second).Get("http://" + web + "/through-the-relay")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello /through-the-relay" {
		t.Fatalf("HTTP answer %q", body)
	}
	m.transfer(t, m.serve(t, testnet.SHA256Sink), 64<<20, nil)
	for _, n := range []*node{m.a, m.b} {
		if p := n.path(); p.Path != "relay" || p.PathReason == "" {
			t.Errorf("%s: path %q (%s), want relay and why", n.name, p.Path, p.PathReason)
		}
	}
	t.Logf("meshinit status in site A:\n%s", m.a.statusText())
}

// echoConn keeps one connection to an echo server in site B and checks a
// line round trip on it.
type echoConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (e *echoConn) roundTrip(line string) {
	e.t.Helper()
	e.c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintln(e.c, line)
	got, err := e.r.ReadString('\n')
	if err != nil || got != "echo: "+line+"\n" {
		e.t.Fatalf("round trip %q on the open connection: %q, %v", line, got, err)
	}
}

// 2. Endpoint-independent NAT: the path turns direct within seconds, and a
// connection opened over the relay survives the switch.
func TestPathTurnsDirectThroughNATAndConnectionSurvives(t *testing.T) {
	harness.Integration(t)
	m := startMesh(t, newTopology(t))
	c := m.dial(t, m.serve(t, testnet.EchoLines("echo")))
	defer c.Close()
	e := &echoConn{t: t, c: c, r: bufio.NewReader(c)}
	e.roundTrip("first")
	start := time.Now()
	n := 0
	waitPath(t, m.a, "direct", 30*time.Second, func() { n++; e.roundTrip(fmt.Sprint("tick ", n)) })
	waitPath(t, m.b, "direct", 30*time.Second, func() { n++; e.roundTrip(fmt.Sprint("tick ", n)) })
	t.Logf("direct after %v", time.Since(start).Round(time.Millisecond))
	p := m.a.path()
	if !strings.HasPrefix(p.Endpoint, natBWAN+":") {
		t.Errorf("a's direct endpoint %q is not b's NAT address %s", p.Endpoint, natBWAN)
	}
	if text := m.a.statusText(); !strings.Contains(text, "direct "+natBWAN+":") || !strings.Contains(text, "relay:") {
		t.Errorf("meshinit status does not show the direct path and the relay:\n%s", text)
	}
	e.roundTrip("after the switch")
}

// 3. The direct path is blackholed mid-transfer: traffic falls back to the
// relay and the transfer completes.
func TestBlackholedDirectPathFallsBackToTheRelay(t *testing.T) {
	harness.Integration(t)
	tp := newTopology(t)
	m := startMesh(t, tp)
	sink := m.serve(t, testnet.SHA256Sink)
	c := m.dial(t, m.serve(t, testnet.EchoLines("echo")))
	defer c.Close()
	e := &echoConn{t: t, c: c, r: bufio.NewReader(c)}
	n := 0
	waitPath(t, m.a, "direct", 30*time.Second, func() { n++; e.roundTrip(fmt.Sprint("tick ", n)) })
	m.transfer(t, sink, 32<<20, func() {
		tp.dropUDPBetweenSites()
		t.Log("direct path blackholed")
	})
	if p := m.a.path(); p.Path != "relay" {
		t.Errorf("after the blackhole a's path is %q (%s), want relay", p.Path, p.PathReason)
	}
}

// 5. meshcoord is restarted mid-transfer: the relay reconnects and the
// transfer resumes.
func TestCoordinatorRestartMidTransfer(t *testing.T) {
	harness.Integration(t)
	tp := newTopology(t)
	tp.dropUDPBetweenSites()
	m := startMesh(t, tp)
	before := m.a.waitUp(1).Relay.Connects
	m.transfer(t, m.serve(t, testnet.SHA256Sink), 32<<20, func() {
		m.coord.Restart(t)
		t.Log("meshcoord restarted")
	})
	if st, _ := m.a.status(); st.Relay == nil || st.Relay.Connects <= before {
		t.Errorf("relay connects %v, want more than %d (a reconnect)", st.Relay, before)
	}
}

// 4. The only way out of site A is a real HTTP CONNECT proxy (tinyproxy on
// its router): registration, map and relay all go through it.
func TestRelayThroughHTTPConnectProxy(t *testing.T) {
	harness.Integration(t)
	tp := newTopology(t)
	tp.onlyProxyOut()
	proxy := startTinyproxy(t, tp.natA, natALAN, coordPort)
	env := []string{"HTTP_PROXY=" + proxy, "HTTPS_PROXY=" + proxy, "http_proxy=" + proxy, "https_proxy=" + proxy}
	m := startMesh(t, tp, env...)
	m.transfer(t, m.serve(t, testnet.SHA256Sink), 8<<20, nil)
	if p := m.a.path(); p.Path != "relay" {
		t.Errorf("a's path %q (%s), want relay (no UDP leaves site A)", p.Path, p.PathReason)
	}
}
