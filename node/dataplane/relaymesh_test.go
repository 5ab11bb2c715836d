package dataplane

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/internal/testnet"
)

// newMeshedRelayRigs starts two relays linked as replicas are (one mesh
// key, each listing the other).
func newMeshedRelayRigs(t testing.TB) (*relayRig, *relayRig) {
	key := []byte("a mesh key for the dataplane tests, 32+ bytes")
	urls := make([]atomic.Value, 2)
	var rigs [2]*relayRig
	for i := range rigs {
		other := 1 - i
		srv := relay.New(relay.Config{Authenticate: tokenAuth, Log: testLogger(t), Mesh: &relay.MeshConfig{
			ID: fmt.Sprint("r", i), Key: key, Refresh: 50 * time.Millisecond,
			Peers: func(context.Context) ([]relay.Peer, error) {
				u, _ := urls[other].Load().(string)
				return []relay.Peer{{ID: fmt.Sprint("r", other), URL: u}}, nil
			},
		}})
		hs := httptest.NewServer(srv)
		t.Cleanup(func() { srv.Close(); hs.Close() })
		urls[i].Store(hs.URL)
		rigs[i] = &relayRig{srv: srv, url: hs.URL}
	}
	return rigs[0], rigs[1]
}

// peerOverRelay makes a and b peers with no endpoints (the relay is their
// only path), b forwarding to its host.
func peerOverRelay(t *testing.T, a, b *testNode) {
	t.Helper()
	if err := a.dev.UpsertPeer(b.asPeer()); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.UpsertPeer(a.asPeer()); err != nil {
		t.Fatal(err)
	}
	if err := b.dev.Forward(nil); err != nil {
		t.Fatal(err)
	}
}

// transfer sends size bytes from a to a sink behind b and checks they
// arrived intact.
func transfer(t *testing.T, a, b *testNode, size int) {
	t.Helper()
	sink := testnet.Serve(t, "tcp", "127.0.0.1:0", testnet.SHA256Sink)
	c, err := a.dev.DialContext(withTimeout(t, 30*time.Second), "tcp", netip.AddrPortFrom(b.ipv4, sink).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, _ := io.ReadAll(c)
	if want := sha256.Sum256(data); string(got) != fmt.Sprintf("%x", want) {
		t.Fatalf("sink got a different stream: %q", got)
	}
}

// TestRelayFollowsTheCoordinatorAcrossMeshedRelays: a is on relay r0 and
// b on r1, the relays of two replicas: WireGuard traffic flows between
// them over the replicas' link. Then a's coordinator changes (its
// coordinator list failed over to r1's replica): a's relay connection
// moves to r1 by itself, and traffic flows on.
func TestRelayFollowsTheCoordinatorAcrossMeshedRelays(t *testing.T) {
	r0, r1 := newMeshedRelayRigs(t)
	current := newMovingURL(r0.url)
	a := startRelayNode(t, 1, &relayRig{srv: r0.srv, url: r0.url, current: current}, false, false)
	waitFor(t, 20*time.Second, "a on r0", func() bool { return r0.srv.Connected(a.pub) })
	b := newRelayNode(t, 2, r1, false, false)
	waitFor(t, 20*time.Second, "each relay learns the other's node", func() bool {
		ra, okA := r1.srv.RemoteReplica(a.pub)
		rb, okB := r0.srv.RemoteReplica(b.pub)
		return okA && okB && ra == "r0" && rb == "r1"
	})
	peerOverRelay(t, a, b)
	transfer(t, a, b, 1<<20)
	if p := a.dev.Path(b.pub); p.Kind != PathRelay {
		t.Fatalf("path %+v, want relay", p)
	}
	before, _ := a.dev.Relay()

	current.set(r1.url)
	waitFor(t, 20*time.Second, "a's relay connection moves to r1", func() bool {
		st, _ := a.dev.Relay()
		return r1.srv.Connected(a.pub) && !r0.srv.Connected(a.pub) && st.State == "connected" && st.Reconnects > before.Reconnects
	})
	if after, _ := a.dev.Relay(); after.Reconnects != before.Reconnects+1 {
		t.Errorf("relay reconnects %d → %d, want one more", before.Reconnects, after.Reconnects)
	}
	if _, ok := r1.srv.RemoteReplica(a.pub); ok {
		t.Error("r1 still routes a through r0")
	}
	transfer(t, a, b, 1<<20)
}
