package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// env is a coordinator on a real SQLite file in t.TempDir(), served over
// real HTTP on loopback: api (node API) and admin (the admin handler, as
// the socket would serve it). Its lifecycle clock is a fake that moves only
// when the test advances it, so timing rules are checked exactly; a restart
// keeps the clock.
type env struct {
	t     testing.TB
	cfg   Config
	clock *clock.Fake
	db    string
	s     *Server
	api   *httptest.Server
	admin *httptest.Server
	ac    *adminclient.Client
}

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{t: t, cfg: cfg, db: filepath.Join(t.TempDir(), "coord.db")}
	if cfg.Clock == nil {
		// A round start, so times in failure messages read easily.
		e.clock = clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		e.cfg.Clock = e.clock
	}
	e.start()
	return e
}

// advance moves the coordinator's clock forward by d; every timer due by
// then has fired when it returns.
func (e *env) advance(d time.Duration) { e.clock.Advance(d) }

// now is the coordinator's time.
func (e *env) now() time.Time { return e.clock.Now() }

func (e *env) start() {
	t := e.t
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	s, err := New(context.Background(), cfg, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	e.s = s
	e.api = httptest.NewServer(s.Handler())
	e.admin = httptest.NewServer(s.AdminHandler())
	e.ac, err = adminclient.NewHTTP(e.admin.URL, "unused-on-the-socket-handler", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
}

// stop closes the coordinator (streams end) and then the HTTP servers.
func (e *env) stop() {
	if e.s == nil {
		return
	}
	e.s.Close()
	e.api.Close()
	e.admin.Close()
	e.s = nil
}

// restart stops the server and starts a new one on the same file.
func (e *env) restart() {
	e.stop()
	e.start()
}

func (e *env) createKey(req meshapi.KeyCreateRequest) *meshapi.KeyCreateResponse {
	e.t.Helper()
	k, err := e.ac.CreateKey(context.Background(), req)
	if err != nil {
		e.t.Fatalf("creating key: %v", err)
	}
	return k
}

func (e *env) nodes() []meshapi.Node {
	e.t.Helper()
	ns, err := e.ac.Nodes(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return ns
}

func (e *env) nodeByName(name string) (meshapi.Node, bool) {
	for _, n := range e.nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return meshapi.Node{}, false
}

func (e *env) events() []meshapi.Event {
	e.t.Helper()
	var out []meshapi.Event
	err := e.ac.Events(context.Background(), 0, false, func(ev meshapi.Event) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitEvent follows the event stream until match, failing after timeout.
func (e *env) waitEvent(timeout time.Duration, match func(meshapi.Event) bool) meshapi.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var found *meshapi.Event
	var seen []string
	e.ac.Events(ctx, 0, true, func(ev meshapi.Event) error {
		if match(ev) {
			found = &ev
			return adminclient.ErrStop
		}
		seen = append(seen, fmt.Sprintf("%s %s %s", ev.Type, ev.Name, ev.Reason))
		return nil
	})
	if found == nil {
		e.t.Fatalf("no matching event in %v; saw %v", timeout, seen)
	}
	return *found
}

// do sends a JSON request to the node API and decodes the answer.
func do(t testing.TB, method, url, secret string, body any, out any) (int, meshapi.Error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if raw, ok := body.([]byte); ok {
			rd = bytes.NewReader(raw)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, url, rd)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var eb meshapi.ErrorBody
		if err := json.Unmarshal(data, &eb); err != nil {
			t.Fatalf("%s %s: HTTP %d with a body that is not an ErrorBody: %q", method, url, resp.StatusCode, data)
		}
		return resp.StatusCode, eb.Error
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %q", method, url, err, data)
		}
	}
	return resp.StatusCode, meshapi.Error{}
}

func randomKey() meshapi.Key {
	var k meshapi.Key
	rand.Read(k[:])
	return k
}

// client is a simulated node.
type client struct {
	t    testing.TB
	e    *env
	reg  meshapi.RegisterResponse
	strm *mapStream
}

func (e *env) register(key, hostname string) *client {
	e.t.Helper()
	c, status, er := e.tryRegister(key, hostname)
	if c == nil {
		e.t.Fatalf("register %q: HTTP %d %+v", hostname, status, er)
	}
	return c
}

func (e *env) tryRegister(key, hostname string) (*client, int, meshapi.Error) {
	e.t.Helper()
	c := &client{t: e.t, e: e}
	status, er := do(e.t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: key, Hostname: hostname, PublicKey: randomKey()}, &c.reg)
	if status != http.StatusOK {
		return nil, status, er
	}
	return c, status, er
}

func (c *client) id() meshapi.NodeID { return c.reg.Node.ID }

func (c *client) logout(body any) (int, meshapi.Error, meshapi.LogoutResponse) {
	var out meshapi.LogoutResponse
	status, er := do(c.t, "POST", c.e.api.URL+meshapi.PathLogout, c.reg.Secret, body, &out)
	return status, er, out
}

// mapStream is an open GET /v1/map with its lines delivered on a channel.
type mapStream struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	lines  chan meshapi.MapMessage
	mu     sync.Mutex
	err    error
}

// connect opens c's map stream with an optional query ("since=5&epoch=x").
func (c *client) connect(query string) *mapStream {
	c.t.Helper()
	ms, status, er := openStream(c.t, c.e.api.URL, c.reg.Secret, query)
	if ms == nil {
		c.t.Fatalf("map stream of %s: HTTP %d %+v", c.reg.Node.Name, status, er)
	}
	c.strm = ms
	return ms
}

func openStream(t testing.TB, base, secret, query string) (*mapStream, int, meshapi.Error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := base + meshapi.PathMap
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		var eb meshapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return nil, resp.StatusCode, eb.Error
	}
	if ct := resp.Header.Get("Content-Type"); ct != meshapi.ContentTypeStream {
		t.Errorf("map stream Content-Type %q, want %q", ct, meshapi.ContentTypeStream)
	}
	ms := &mapStream{t: t, cancel: cancel, done: make(chan struct{}), lines: make(chan meshapi.MapMessage, 4096)}
	go func() {
		defer close(ms.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), meshapi.MaxStreamLineBytes)
		for sc.Scan() {
			var m meshapi.MapMessage
			if err := meshapi.DecodeBytes(sc.Bytes(), &m); err != nil {
				ms.mu.Lock()
				ms.err = fmt.Errorf("bad line %q: %v", sc.Bytes(), err)
				ms.mu.Unlock()
				return
			}
			select {
			case ms.lines <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(ms.close)
	return ms, resp.StatusCode, meshapi.Error{}
}

// close drops the stream from the client side, as a crashed node would.
func (ms *mapStream) close() {
	ms.cancel()
	<-ms.done
}

// next returns the next line, failing after timeout.
func (ms *mapStream) next(timeout time.Duration) meshapi.MapMessage {
	ms.t.Helper()
	select {
	case m, ok := <-ms.lines:
		if !ok {
			ms.t.Fatal("stream closed")
		}
		return m
	case <-time.After(timeout):
		ms.mu.Lock()
		defer ms.mu.Unlock()
		ms.t.Fatalf("no map line within %v (stream error: %v)", timeout, ms.err)
	}
	return meshapi.MapMessage{}
}

// nextChange skips keepalives.
func (ms *mapStream) nextChange(timeout time.Duration) meshapi.MapMessage {
	ms.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := ms.next(time.Until(deadline))
		if m.Type != meshapi.MsgKeepalive {
			return m
		}
	}
}

// ended reports whether the server closed the stream within timeout.
func (ms *mapStream) ended(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case <-ms.done:
			return true
		case <-ms.lines:
		case <-deadline:
			return false
		}
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// streamGone waits until the server has noticed that n's stream ended.
func (e *env) streamGone(n *client) {
	e.t.Helper()
	eventually(e.t, 5*time.Second, "server notices the dropped stream", func() bool {
		e.s.mu.Lock()
		defer e.s.mu.Unlock()
		return !e.s.presence.Streaming(n.id())
	})
}
