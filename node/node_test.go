package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/meshinit/meshinit/node/nametable"
)

// These tests run whole nodes (real WireGuard devices on netstack, real
// proxy) against the real coordinator in process, on loopback.

// loopbackOnly makes n announce only 127.0.0.1: the tests' WireGuard
// traffic stays on loopback whatever addresses the host has.
func loopbackOnly(n *Node) *Node {
	n.endpointsFor = func(port int) []netip.AddrPort {
		if port == 0 {
			return nil
		}
		return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
	}
	return n
}

func startNode(t *testing.T, c *coordinatortest.Server, key, host string) *Node {
	t.Helper()
	return startNodeAt(t, c.URL, key, host)
}

// startNodeAt starts a node whose coordinator is at url (a front in
// front of the real one, say).
func startNodeAt(t *testing.T, url, key, host string) *Node {
	t.Helper()
	n, err := New(Config{
		Coordinator: url, AuthKey: key, Hostname: host,
		ProxyAddr: "127.0.0.1:0", Forward: Forward{All: true},
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	loopbackOnly(n)
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v", host, err)
	}
	return n
}

// echoServer answers each connection with one line naming who.
func echoServer(t *testing.T, who string) (port string) {
	t.Helper()
	p := testnet.Serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) { fmt.Fprintf(c, "hello from %s\n", who) })
	return strconv.Itoa(int(p))
}

// dialLine dials address through n and reads one line.
func dialLine(n *Node, address string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", address)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

// eventually polls f for up to 10s.
func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 10s: %s", what, why)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func TestNodesReachEachOtherByNameAndLateJoiner(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	a := startNode(t, co, key, "alpha")
	b := startNode(t, co, key, "beta")
	portB := echoServer(t, "beta")
	if st := a.Status(); st.State != ctlsock.StateUp || st.Name != "alpha" || st.Coordinator.State != "connected" {
		t.Fatalf("alpha status: %+v", st)
	}
	// beta's server listens on 127.0.0.1; alpha reaches it by name over the
	// mesh and beta's forwarding.
	for _, host := range []string{"beta", "beta.mesh.internal", "beta.mesh.internal.", b.Self().IPv4.String()} {
		var got string
		eventually(t, "alpha reaches "+host, func() (bool, string) {
			var err error
			got, err = dialLine(a, net.JoinHostPort(host, portB))
			return got == "hello from beta", fmt.Sprintf("%q, %v", got, err)
		})
	}
	eventually(t, "alpha sees a handshake with beta", func() (bool, string) {
		st := a.Status()
		return len(st.Peers) == 1 && !st.Peers[0].LastHandshake.IsZero() && st.Peers[0].Name == "beta" &&
			strings.HasPrefix(st.Peers[0].Endpoint, "127.0.0.1:"), fmt.Sprintf("%+v", st.Peers)
	})

	// A third node joins later: reachable both ways, nobody restarted.
	c := startNode(t, co, key, "gamma")
	portA := echoServer(t, "alpha")
	eventually(t, "gamma reaches alpha", func() (bool, string) {
		got, err := dialLine(c, net.JoinHostPort("alpha", portA))
		return got == "hello from alpha", fmt.Sprintf("%q, %v", got, err)
	})
	portC := echoServer(t, "gamma")
	eventually(t, "alpha reaches gamma", func() (bool, string) {
		got, err := dialLine(a, net.JoinHostPort("gamma.mesh.internal", portC))
		return got == "hello from gamma", fmt.Sprintf("%q, %v", got, err)
	})

	// Unknown mesh names fail; other names go to the normal network.
	if _, err := dialLine(a, "nobody.mesh.internal:80"); err == nil || !strings.Contains(err.Error(), "no such node") {
		t.Errorf("dial to an unknown mesh name: %v", err)
	}
	if got, err := dialLine(a, "127.0.0.1:"+portA); got != "hello from alpha" {
		t.Errorf("direct dial through the node: %q, %v", got, err)
	}
}

// alphaReachesBeta starts nodes alpha and beta, beta with a server on a
// localhost port, and waits until alpha reaches it by name over the mesh.
func alphaReachesBeta(t *testing.T) (co *coordinatortest.Server, a, b *Node, portB string) {
	t.Helper()
	co = coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	a = startNode(t, co, key, "alpha")
	b = startNode(t, co, key, "beta")
	portB = echoServer(t, "beta")
	eventually(t, "alpha reaches beta", func() (bool, string) {
		got, err := dialLine(a, "beta:"+portB)
		return got == "hello from beta", fmt.Sprintf("%q, %v", got, err)
	})
	return co, a, b, portB
}

func TestLogoutDeletesAtOnceAndChildKeepsNonMeshAccess(t *testing.T) {
	co, a, b, portB := alphaReachesBeta(t)
	res, err := a.Logout(context.Background())
	if err != nil || !res.Deleted || res.Already {
		t.Fatalf("logout: %+v, %v", res, err)
	}
	var reason meshapi.DeleteReason
	for _, e := range co.Events() {
		if e.Type == meshapi.EventDeleted && e.Name == "alpha" {
			reason = e.Reason
		}
	}
	if reason != meshapi.ReasonLogout {
		t.Fatalf("alpha's deletion reason %q, want logout (deleted at once)", reason)
	}
	if again, err := a.Logout(context.Background()); err != nil || !again.Already {
		t.Fatalf("second logout: %+v, %v", again, err)
	}
	if st := a.Status(); st.State != ctlsock.StateLoggedOut {
		t.Fatalf("state after logout %q", st.State)
	}
	if ok, _ := a.Ready(); ok {
		t.Error("ready after logout")
	}
	if _, err := dialLine(a, "beta:"+portB); err == nil {
		t.Error("mesh dial works after logout")
	}
	if got, _ := dialLine(a, "127.0.0.1:"+portB); got != "hello from beta" {
		t.Errorf("non-mesh dial after logout: %q", got)
	}
	// Mesh destinations fail here; they never go to the normal network.
	assertNoMeshAccess(t, a, b.Self())
	eventually(t, "beta sees alpha leave", func() (bool, string) {
		st := b.Status()
		return len(st.Peers) == 0, fmt.Sprintf("%+v", st.Peers)
	})
}

func TestStartErrorsSayWhich(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	oneOff := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true}).Key
	start := func(url, key string, timeout time.Duration) error {
		n, err := New(Config{Coordinator: url, AuthKey: key, Hostname: "x", ProxyAddr: "", Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		loopbackOnly(n)
		defer n.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err = n.Start(ctx)
		n.Logout(context.Background())
		return err
	}
	if err := start(co.URL, oneOff, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var se *StartError
	err := start(co.URL, oneOff, 5*time.Second)
	if !errors.As(err, &se) || se.Kind != KindKeyRefused || se.KeyReason != "used" || !strings.Contains(err.Error(), "used") {
		t.Errorf("used key: %v", err)
	}
	err = start(co.URL, strings.Repeat("q", len(oneOff)), 5*time.Second)
	if !errors.As(err, &se) || se.KeyReason != "invalid" {
		t.Errorf("unknown key: %v", err)
	}
	dead := fmt.Sprintf("http://127.0.0.1:%d", testnet.ClosedPort(t))
	err = start(dead, oneOff, 300*time.Millisecond)
	if !errors.As(err, &se) || se.Kind != KindUnreachable || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("unreachable coordinator: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), oneOff) {
		t.Error("the error quotes the auth key")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{AuthKey: "k", Hostname: "h"},
		{Coordinator: "http://127.0.0.1:1", Hostname: "h"},
		{Coordinator: "http://127.0.0.1:1", AuthKey: "k"},
		{Coordinator: "ftp://x", AuthKey: "k", Hostname: "h"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// A stop signal during start-up: Logout runs while Start is still going.
// Whatever the interleaving, both return, nothing leaks, and the node does
// not stay registered.
func TestLogoutDuringStart(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	// The delays only spread the logout over the phases of Start (before,
	// during and after registration); no assertion depends on them.
	for i, delay := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		n, err := New(Config{Coordinator: co.URL, AuthKey: key, Hostname: fmt.Sprintf("racer%d", i),
			ProxyAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		loopbackOnly(n)
		started := make(chan error, 1)
		go func() { started <- n.Start(context.Background()) }()
		time.Sleep(delay)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := n.Logout(ctx); err != nil {
			t.Errorf("logout %d: %v", i, err)
		}
		cancel()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("Start %d did not return after a concurrent Logout", i)
		}
		n.Close()
	}
	if nodes := co.Nodes(); len(nodes) != 0 {
		t.Fatalf("nodes left registered after logout during start: %+v", nodes)
	}
}

// assertNoMeshAccess checks that n, out of the mesh, refuses peer's mesh
// address and names itself instead of handing them to the normal network
// (a mesh address would leave through the host's interfaces, a mesh name
// would go to the DNS). Every refusal is local: no packet leaves.
func assertNoMeshAccess(t *testing.T, n *Node, peer meshapi.Node) {
	t.Helper()
	for _, host := range []string{peer.IPv4.String(), peer.Name, peer.FQDN} {
		if _, err := dialLine(n, net.JoinHostPort(host, "80")); err == nil || !strings.Contains(err.Error(), "not in the mesh") {
			t.Errorf("dial to %s out of the mesh: %v; want \"not in the mesh\"", host, err)
		}
	}
	if _, err := dialLine(n, "nobody.mesh.internal:80"); !errors.Is(err, nametable.ErrNoSuchNode) {
		t.Errorf("dial to an unknown mesh name out of the mesh: %v; want ErrNoSuchNode", err)
	}
}

// The coordinator deletes the node (an admin, the GC, a replacement): the
// node leaves the mesh by itself, its app keeps the normal network, and a
// later logout (the stop path) has nothing left to do.
func TestNodeLeavesWhenTheCoordinatorDeletesIt(t *testing.T) {
	co, a, b, portB := alphaReachesBeta(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := co.Admin.DeleteNode(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alpha leaves the mesh", func() (bool, string) {
		st := a.Status()
		return st.State == ctlsock.StateLoggedOut, "state " + st.State
	})
	if ok, _ := a.Ready(); ok {
		t.Error("ready after the coordinator deleted the node")
	}
	assertNoMeshAccess(t, a, b.Self())
	if got, err := dialLine(a, "127.0.0.1:"+portB); got != "hello from beta" {
		t.Errorf("non-mesh dial after the deletion: %q, %v", got, err)
	}
	res, err := a.Logout(ctx)
	if err != nil || !res.Already || !res.Deleted {
		t.Fatalf("logout after the deletion: %+v, %v; want already deleted", res, err)
	}
}

// A local failure (here the proxy's port is taken) is reported as such,
// with the setting to change, and the stop path's logout leaves nothing
// registered.
func TestStartFailsLocallyWhenTheProxyPortIsTaken(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	n, err := New(Config{Coordinator: co.URL, AuthKey: key, Hostname: "busy",
		ProxyAddr: taken.Addr().String(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	loopbackOnly(n)
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Start(ctx)
	var se *StartError
	if !errors.As(err, &se) || se.Kind != KindLocal || se.Stage != StageProxy || !strings.Contains(err.Error(), "MESH_PROXY") {
		t.Fatalf("start with the proxy port taken: %v (%+v); want a local proxy failure naming MESH_PROXY", err, se)
	}
	if _, err := n.Logout(ctx); err != nil {
		t.Fatalf("logout after the failed start: %v", err)
	}
	if nodes := co.Nodes(); len(nodes) != 0 {
		t.Fatalf("nodes left registered after a failed start and its logout: %+v", nodes)
	}
}
