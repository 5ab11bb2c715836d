package controlclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
)

// replicaFront stands for one replica of a mesh: a TCP forwarder to the
// real coordinator, so several of them serve one shared state, as
// replicas on one database do. Killing it resets its connections, as a
// SIGKILLed replica's kernel does.
type replicaFront struct {
	URL   string
	ln    net.Listener
	conns atomic.Int64 // connections accepted
	mu    sync.Mutex
	open  []net.Conn
}

func newReplicaFront(t *testing.T, target string) *replicaFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &replicaFront{URL: "http://" + ln.Addr().String(), ln: ln}
	addr := strings.TrimPrefix(target, "http://")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.open = append(f.open, c, up)
			f.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(f.kill)
	return f
}

// kill stops accepting and resets every connection.
func (f *replicaFront) kill() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.open {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
	}
	f.open = nil
}

func fastFollow() FollowOptions {
	return FollowOptions{Backoff: Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}}
}

// A node registers on one replica, streams from a second after the first
// dies, and logs out on a third after the second dies; it stays on a
// working replica (no connection to the others) while it works.
func TestFailoverAcrossReplicasStickyAndResumed(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	fronts := []*replicaFront{newReplicaFront(t, co.URL), newReplicaFront(t, co.URL), newReplicaFront(t, co.URL)}
	list := fronts[0].URL + "," + fronts[1].URL + "," + fronts[2].URL
	a := newTestClient(t, list, Options{})
	reg := register(t, a, k.Key, "alpha", 1)
	fa := follow(t, a, fastFollow())
	fa.next(t, "the full map", func(c Change) bool { return c.Full })
	if err := a.ReportEndpoints(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if a.URL() != fronts[0].URL || fronts[1].conns.Load() != 0 || fronts[2].conns.Load() != 0 {
		t.Fatalf("client on %s, connections to the others %d, %d: want it to stay on the first",
			a.URL(), fronts[1].conns.Load(), fronts[2].conns.Load())
	}

	fronts[0].kill()
	other := newTestClient(t, co.URL, Options{})
	regB := register(t, other, k.Key, "beta", 2)
	c := fa.next(t, "beta, after moving to the second replica", func(c Change) bool { return len(c.Upserted) > 0 || c.Full })
	if c.Full || c.Upserted[0].ID != regB.Node.ID {
		t.Fatalf("after failing over: %+v; want beta's upsert as a delta (the stream resumed)", c)
	}
	if a.URL() != fronts[1].URL {
		t.Fatalf("stream on %s; want the second replica %s", a.URL(), fronts[1].URL)
	}

	fronts[1].kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.Logout(ctx)
	if err != nil || !resp.Deleted {
		t.Fatalf("logout after two replicas died: %+v, %v", resp, err)
	}
	if a.URL() != fronts[2].URL {
		t.Fatalf("logged out on %s; want the third replica %s", a.URL(), fronts[2].URL)
	}
	var deleted bool
	for _, e := range co.Events() {
		deleted = deleted || (e.Type == meshapi.EventDeleted && e.NodeID == reg.Node.ID && e.Reason == meshapi.ReasonLogout)
	}
	if !deleted {
		t.Fatal("no deleted/logout event for the node")
	}
}

// A 5xx moves to the next replica; the coordinator's own refusal (a 4xx
// with its error body) does not: every replica would say the same.
func TestFailoverOn5xxNotOnRefusal(t *testing.T) {
	failing := unavailableReplica(t)
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	a := newTestClient(t, failing.URL+","+co.URL, Options{})
	register(t, a, k.Key, "alpha", 1)
	if a.URL() != co.URL {
		t.Fatalf("after a 503: on %s, want %s", a.URL(), co.URL)
	}

	empty := coordinatortest.NewServer(t, coordinator.Config{}) // does not know the key
	b := newTestClient(t, empty.URL+","+co.URL, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.Register(ctx, Registration{AuthKey: k.Key, Hostname: "beta", PublicKey: pubKey(2)})
	if reason, ok := KeyRefusal(err); !ok || reason != "invalid" {
		t.Fatalf("register refused by the first coordinator: %v; want the refusal, not a failover", err)
	}
	if b.URL() != empty.URL {
		t.Fatalf("a refusal moved the client to %s", b.URL())
	}
}

// Every replica down: the client keeps trying them all, paced by its
// backoff, and gives up only with its context.
func TestFailoverAllDownGivesUpWithContext(t *testing.T) {
	var urls []string
	for range 3 {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", testnet.ClosedPort(t)))
	}
	a := newTestClient(t, strings.Join(urls, ","), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := a.Register(ctx, Registration{AuthKey: "mkey-x", Hostname: "x", PublicKey: pubKey(1)})
	var u *UnreachableError
	if !errors.As(err, &u) {
		t.Fatalf("err=%v; want an UnreachableError", err)
	}
	if !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("err=%v; want it to say how many attempts", err)
	}
}

func TestParseCoordinatorList(t *testing.T) {
	urls, err := ParseCoordinatorList(" https://a:1/ , b:2,http://c")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range urls {
		got = append(got, u.String())
	}
	if strings.Join(got, " ") != "https://a:1 http://b:2 http://c" {
		t.Fatalf("parsed %v", got)
	}
	for in, want := range map[string]string{
		"":                    "empty",
		"http://a,,http://b":  "entry 2 is empty",
		"http://a,ftp://b":    "entry 2",
		"http://a,":           "entry 2 is empty",
		"http://a?x=1":        "only scheme",
		"http://a,http://b#x": "entry 2",
		"http://a, http://":   "entry 2",
	} {
		if _, err := ParseCoordinatorList(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCoordinatorList(%q) = %v; want an error mentioning %q", in, err, want)
		}
	}
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// WatchURL's channel is closed exactly when the client moves to another
// replica (a 503 here), for every watcher at once; the next WatchURL names
// the new replica with a fresh, open channel. A refusal, which does not
// move the client, closes nothing, nor does a failure with one coordinator.
func TestWatchURLSignalsTheMove(t *testing.T) {
	failing := unavailableReplica(t)
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	a := newTestClient(t, failing.URL+","+co.URL, Options{})
	base, ch1 := a.WatchURL()
	_, ch2 := a.WatchURL()
	if base != failing.URL || closed(ch1) || closed(ch2) {
		t.Fatalf("before any request: WatchURL = %s (closed %v, %v); want %s, open", base, closed(ch1), closed(ch2), failing.URL)
	}
	register(t, a, k.Key, "alpha", 1)
	if !closed(ch1) || !closed(ch2) {
		t.Fatalf("moved to %s, but the watchers' channels are open (%v, %v)", a.URL(), closed(ch1), closed(ch2))
	}
	base, ch3 := a.WatchURL()
	if base != co.URL || closed(ch3) {
		t.Fatalf("after the move: WatchURL = %s (closed %v); want %s, open", base, closed(ch3), co.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Register(ctx, Registration{AuthKey: "mkey-unknown", Hostname: "beta", PublicKey: pubKey(2)}); err == nil {
		t.Fatal("registered with an unknown key")
	}
	if closed(ch3) || a.URL() != co.URL {
		t.Fatalf("a refusal moved the client (closed %v, on %s)", closed(ch3), a.URL())
	}

	single := newTestClient(t, failing.URL, Options{})
	_, ch := single.WatchURL()
	// It retries the 503 until its context ends: a few failures.
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	if _, err := single.Register(short, Registration{AuthKey: k.Key, Hostname: "gamma", PublicKey: pubKey(3)}); err == nil {
		t.Fatal("registered through the failing coordinator")
	}
	if closed(ch) {
		t.Fatal("a failure closed the channel of a client with one coordinator")
	}
}

// Concurrent failures on one replica move the client once and close the
// watchers' channel once; a failure reported for a replica the client has
// already left moves nothing. Run with -race: watch and failed race.
func TestWatchConcurrentFailuresMoveOnce(t *testing.T) {
	urls, err := ParseCoordinatorList("http://a:1,http://b:2,http://c:3")
	if err != nil {
		t.Fatal(err)
	}
	cs := &coordinators{urls: urls, log: slog.New(slog.DiscardHandler)}
	first, ch := cs.watch()
	req := *first
	req.Path += "/v1/map"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			cs.watch()
			cs.failed(&req, errors.New("boom"))
		})
	}
	wg.Wait()
	if !closed(ch) {
		t.Fatal("the channel of the first coordinator is open after it failed")
	}
	now, ch2 := cs.watch()
	if now.String() != "http://b:2" {
		t.Fatalf("after concurrent failures on a: on %s, want b (moved once)", now)
	}
	cs.failed(&req, errors.New("late")) // a again: already left
	if closed(ch2) || cs.current().String() != "http://b:2" {
		t.Fatalf("a late failure of a moved the client to %s", cs.current())
	}
}

// unavailableReplica is a replica that answers every request with the
// coordinator's own retryable 503.
func unavailableReplica(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"internal","message":"store behind"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}
