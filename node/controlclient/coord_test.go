package controlclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
)

// These tests run the client against the real coordinator, in process, on
// loopback (coordinatortest), with its SQLite store in a temp dir.

func newTestClient(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	c, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pubKey(b byte) meshapi.Key {
	var k meshapi.Key
	for i := range k {
		k[i] = b
	}
	return k
}

func register(t *testing.T, c *Client, key, host string, b byte) *meshapi.RegisterResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Register(ctx, Registration{AuthKey: key, Hostname: host, PublicKey: pubKey(b)})
	if err != nil {
		t.Fatalf("register %s: %v", host, err)
	}
	return resp
}

// follower runs Follow in the background and collects its changes.
type follower struct {
	mu      sync.Mutex
	changes []Change
	ch      chan Change
	done    chan error
	cancel  context.CancelFunc
}

func follow(t *testing.T, c *Client, opts FollowOptions) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{ch: make(chan Change, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		var m NetMap
		f.done <- c.Follow(ctx, &m, func(ch Change, _ *NetMap) { f.ch <- ch }, opts)
	}()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

// next waits for the next change that satisfies ok.
func (f *follower) next(t *testing.T, what string, ok func(Change) bool) Change {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-f.ch:
			if ok(c) {
				return c
			}
		case err := <-f.done:
			t.Fatalf("waiting for %s: Follow returned %v", what, err)
		case <-timeout:
			t.Fatalf("waiting for %s: no such change in 10s", what)
		}
	}
}

func TestRegisterFollowEndpointsLogout(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	a := newTestClient(t, co.URL, Options{})
	regA := register(t, a, k.Key, "alpha", 1)
	if regA.Node.Name != "alpha" || !regA.Node.IPv4.IsValid() || regA.Domain == "" || !a.HasSecret() {
		t.Fatalf("register answer: %+v", regA.Node)
	}
	fa := follow(t, a, FollowOptions{})
	first := fa.next(t, "the full map", func(c Change) bool { return c.Full })
	if len(first.Upserted) != 0 {
		t.Fatalf("first map of the first node has peers: %+v", first.Upserted)
	}
	if st := a.MapStatus(); st.State != StreamConnected {
		t.Fatalf("stream state %q after the full map", st.State)
	}

	b := newTestClient(t, co.URL, Options{})
	regB := register(t, b, k.Key, "beta", 2)
	fa.next(t, "beta's upsert", func(c Change) bool {
		return len(c.Upserted) == 1 && c.Upserted[0].ID == regB.Node.ID && c.Upserted[0].PublicKey == pubKey(2)
	})

	ep := netip.MustParseAddrPort("127.0.0.1:41641")
	if err := b.ReportEndpoints(context.Background(), []netip.AddrPort{ep}); err != nil {
		t.Fatal(err)
	}
	fa.next(t, "beta's endpoint", func(c Change) bool {
		return len(c.Upserted) == 1 && len(c.Upserted[0].Endpoints) == 1 && c.Upserted[0].Endpoints[0] == ep
	})

	resp, err := b.Logout(context.Background())
	if err != nil || !resp.Deleted {
		t.Fatalf("logout of an ephemeral node: %+v, %v", resp, err)
	}
	if b.HasSecret() {
		t.Error("client kept its secret after logout")
	}
	fa.next(t, "beta's removal", func(c Change) bool {
		return len(c.Removed) == 1 && c.Removed[0] == regB.Node.ID
	})
	var deleted *meshapi.Event
	for _, e := range co.Events() {
		if e.Type == meshapi.EventDeleted && e.NodeID == regB.Node.ID {
			deleted = &e
		}
	}
	if deleted == nil || deleted.Reason != meshapi.ReasonLogout {
		t.Fatalf("no deleted/logout event for beta: %+v", deleted)
	}
}

func TestRegisterKeyRefusals(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	c := newTestClient(t, co.URL, Options{})
	try := func(key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Register(ctx, Registration{AuthKey: key, Hostname: "x", PublicKey: pubKey(9)})
		return err
	}
	expect := func(key, reason string) {
		t.Helper()
		err := try(key)
		if got, ok := KeyRefusal(err); !ok || got != reason {
			t.Errorf("register: err=%v; want a key refusal %q", err, reason)
		}
	}
	oneOff := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true})
	if err := try(oneOff.Key); err != nil {
		t.Fatalf("first use of a one-off key: %v", err)
	}
	expect(oneOff.Key, "used")

	revoked := co.CreateKey(meshapi.KeyCreateRequest{Reusable: true})
	if _, err := co.Admin.RevokeKey(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	expect(revoked.Key, "revoked")

	expect(strings.Repeat("z", len(oneOff.Key)), "invalid")

	expiring := co.CreateKey(meshapi.KeyCreateRequest{Reusable: true, Expiry: meshapi.Duration(time.Millisecond)})
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := try(expiring.Key)
		if r, ok := KeyRefusal(err); ok && r == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a key with a 1ms expiry still not refused as expired: %v", err)
		}
	}
}

func TestRegisterUnreachableCoordinatorGivesUpWithContext(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testnet.ClosedPort(t)) // connection refused
	c := newTestClient(t, "http://"+addr, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Register(ctx, Registration{AuthKey: "k", Hostname: "x", PublicKey: pubKey(1)})
	var u *UnreachableError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("err=%v; want an UnreachableError after several attempts", err)
	}
	if _, ok := KeyRefusal(err); ok {
		t.Fatal("unreachable reported as a key refusal")
	}
}

// breakable wraps the client's connections so a test can cut them (as a
// network failure would) or freeze them (a dead path TCP has not noticed).
type breakable struct {
	mu     sync.Mutex
	conns  []*freezable
	frozen bool
}

type freezable struct {
	net.Conn
	b      *breakable
	once   sync.Once
	closed chan struct{}
}

// Read delivers nothing while the path is frozen; it ends then only when
// the connection is closed (by the client's watchdog).
func (f *freezable) Read(p []byte) (int, error) {
	for f.b.isFrozen() {
		select {
		case <-f.closed:
			return 0, net.ErrClosed
		case <-time.After(5 * time.Millisecond):
		}
	}
	return f.Conn.Read(p)
}

func (f *freezable) Close() error {
	f.once.Do(func() { close(f.closed) })
	return f.Conn.Close()
}

func (b *breakable) isFrozen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.frozen
}

func (b *breakable) transport() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			f := &freezable{Conn: c, b: b, closed: make(chan struct{})}
			b.mu.Lock()
			b.conns = append(b.conns, f)
			b.mu.Unlock()
			return f, nil
		},
	}}
}

func (b *breakable) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

func (b *breakable) freeze(on bool) {
	b.mu.Lock()
	b.frozen = on
	b.mu.Unlock()
}

func TestFollowResumesAfterCutWithoutFullMap(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	var br breakable
	a := newTestClient(t, co.URL, Options{HTTPClient: br.transport()})
	register(t, a, k.Key, "alpha", 1)
	fa := follow(t, a, FollowOptions{Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	fa.next(t, "the full map", func(c Change) bool { return c.Full })

	br.cut()
	b := newTestClient(t, co.URL, Options{})
	regB := register(t, b, k.Key, "beta", 2)
	// The delta made while the stream was down arrives after the resume,
	// as a delta: no second full map.
	c := fa.next(t, "beta after the reconnect", func(c Change) bool { return len(c.Upserted) > 0 || c.Full })
	if c.Full || c.Upserted[0].ID != regB.Node.ID {
		t.Fatalf("after a reconnect: %+v; want beta's upsert as a delta", c)
	}
	if st := a.MapStatus(); st.Reconnects < 1 {
		t.Fatalf("status after a cut: %+v; want a reconnect", st)
	}
}

func TestFollowDropsSilentStream(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{KeepaliveInterval: 50 * time.Millisecond})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	var br breakable
	a := newTestClient(t, co.URL, Options{HTTPClient: br.transport()})
	register(t, a, k.Key, "alpha", 1)
	fa := follow(t, a, FollowOptions{Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	fa.next(t, "the full map", func(c Change) bool { return c.Full })

	br.freeze(true)
	deadline := time.Now().Add(5 * time.Second)
	for a.MapStatus().Reconnects == 0 || !strings.Contains(a.MapStatus().LastError, "silent") {
		if time.Now().After(deadline) {
			t.Fatalf("a frozen stream was not dropped: %+v", a.MapStatus())
		}
		time.Sleep(5 * time.Millisecond) // polling a status with a deadline
	}
	br.freeze(false)
	b := newTestClient(t, co.URL, Options{})
	regB := register(t, b, k.Key, "beta", 2)
	fa.next(t, "beta after the silent stream was replaced", func(c Change) bool {
		return len(c.Upserted) > 0 && c.Upserted[0].ID == regB.Node.ID
	})
}

func TestFollowEndsWhenNodeIsDeleted(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	a := newTestClient(t, co.URL, Options{})
	reg := register(t, a, k.Key, "alpha", 1)
	fa := follow(t, a, FollowOptions{Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	fa.next(t, "the full map", func(c Change) bool { return c.Full })
	if _, err := co.Admin.DeleteNode(context.Background(), reg.Node.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fa.done:
		fa.done <- err
		if !IsLoggedOut(err) {
			t.Fatalf("Follow returned %v; want a logged-out error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow still running 10s after the node was deleted")
	}
	if st := a.MapStatus(); st.State != StreamStopped {
		t.Fatalf("status %q after deletion", st.State)
	}
	if _, err := a.Logout(context.Background()); !errors.Is(err, ErrAlreadyGone) {
		t.Fatalf("logout of a deleted node: %v; want ErrAlreadyGone", err)
	}
}

func TestLogoutUnreachableRespectsContext(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true})
	a := newTestClient(t, co.URL, Options{})
	register(t, a, k.Key, "alpha", 1)
	co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := a.Logout(ctx)
	if err == nil {
		t.Fatal("logout against a stopped coordinator succeeded")
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("logout took %v with a 200ms context", took)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var br breakable
	a := newTestClient(t, co.URL, Options{Logger: log, HTTPClient: br.transport()})
	register(t, a, k.Key, "alpha", 1)
	a.mu.Lock()
	secret := a.secret
	a.mu.Unlock()
	fa := follow(t, a, FollowOptions{Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	fa.next(t, "the full map", func(c Change) bool { return c.Full })
	br.cut() // a reconnect logs an error line
	b := newTestClient(t, co.URL, Options{})
	register(t, b, k.Key, "beta", 2)
	fa.next(t, "beta", func(c Change) bool { return len(c.Upserted) > 0 })
	if _, err := a.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if out == "" {
		t.Fatal("nothing was logged: the test proves nothing")
	}
	for what, s := range map[string]string{"auth key": k.Key, "node secret": secret} {
		if s == "" || strings.Contains(out, s) {
			t.Errorf("the %s appears in the log (or is empty):\n%s", what, out)
		}
	}
}

// TestRegisterRetryAfterLostAnswerGetsTheSameNode: the coordinator
// registers the node but its answer is lost (a proxy in front answers 502
// instead). The client retries with the same node secret and gets that
// node: no second node, and its one-off key is not "used" by the retry.
func TestRegisterRetryAfterLostAnswerGetsTheSameNode(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{})
	target, err := url.Parse(co.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var lost atomic.Bool
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path == meshapi.PathRegister && lost.CompareAndSwap(false, true) {
			return errors.New("the answer is lost on the way back") // the proxy answers 502
		}
		return nil
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	front := httptest.NewServer(proxy)
	defer front.Close()

	c := newTestClient(t, front.URL, Options{})
	resp := register(t, c, key.Key, "web", 7)
	if !lost.Load() {
		t.Fatal("the first answer was not lost: nothing was tested")
	}
	nodes := co.Nodes()
	if len(nodes) != 1 || nodes[0].ID != resp.Node.ID || resp.Node.Name != "web" {
		t.Fatalf("after a retry: nodes %+v, answer %+v; want the one node the first attempt made", nodes, resp.Node)
	}
}
