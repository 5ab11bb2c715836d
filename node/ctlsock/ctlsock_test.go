package ctlsock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a node stand-in: the socket's contract is the Backend
// interface, which the real node implements.
type backend struct {
	mu      sync.Mutex
	ready   bool
	logouts int
	fail    error
	limit   time.Duration // the last logout's ctx: deadline minus the call's start
}

func (b *backend) Status() Status {
	return Status{
		State: StateUp, ID: 7, Name: "web", FQDN: "web.mesh.internal",
		IPv4: netip.MustParseAddr("100.64.0.7"), Net: "userspace", Proxy: "127.0.0.1:1055",
		Coordinator: CoordinatorStatus{URL: "http://127.0.0.1:1", State: "connected", MapVersion: 3},
		Peers: []PeerStatus{{ID: 8, Name: "db", FQDN: "db.mesh.internal", IPv4: netip.MustParseAddr("100.64.0.8"),
			Online: true, Endpoint: "127.0.0.1:5000", LastHandshake: time.Unix(1000, 0)}},
	}
}

func (b *backend) Logout(ctx context.Context) (LogoutResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		b.limit = time.Until(dl)
	}
	if b.fail != nil {
		return LogoutResult{}, b.fail
	}
	b.logouts++
	return LogoutResult{Deleted: true, Already: b.logouts > 1}, nil
}

func (b *backend) Ready() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready, "registering"
}

func sockPath(t *testing.T) string {
	// unix socket paths are limited to ~108 bytes; t.TempDir can be long
	d, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "sub", "meshinit.sock")
}

func TestSocketStatusAndLogout(t *testing.T) {
	path := sockPath(t)
	b := &backend{}
	srv, err := Listen(path, b, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}

	c := NewClient(path)
	ctx := context.Background()
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "web" || s.Peers[0].Name != "db" || !s.Peers[0].LastHandshake.Equal(time.Unix(1000, 0)) || s.Coordinator.State != "connected" {
		t.Errorf("status did not round-trip: %+v", s)
	}
	r, err := c.Logout(ctx)
	if err != nil || !r.Deleted || r.Already {
		t.Fatalf("logout = %+v, %v", r, err)
	}
	if r, _ := c.Logout(ctx); !r.Already {
		t.Errorf("second logout not reported as already done: %+v", r)
	}
	b.mu.Lock()
	b.fail = errors.New("coordinator unreachable")
	b.mu.Unlock()
	if _, err := c.Logout(ctx); err == nil || !strings.Contains(err.Error(), "coordinator unreachable") {
		t.Errorf("failed logout: err=%v, want the backend's reason", err)
	}

	srv.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "no meshinit answers") {
		t.Errorf("status with no server: err=%v", err)
	}
}

func TestStaleSocketIsReplacedLiveOneIsNot(t *testing.T) {
	path := sockPath(t)
	os.MkdirAll(filepath.Dir(path), 0o755)
	// a socket file whose listener is gone
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	srv, err := Listen(path, &backend{}, nil, 0)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer srv.Close()
	if _, err := Listen(path, &backend{}, nil, 0); err == nil || !strings.Contains(err.Error(), "another meshinit") {
		t.Fatalf("second Listen on a live socket: err=%v", err)
	}
}

func TestNonSocketInTheWayIsRefused(t *testing.T) {
	path := sockPath(t)
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, []byte("precious"), 0o644)
	if _, err := Listen(path, &backend{}, nil, 0); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("the file in the way was changed")
	}
}

func TestHealth(t *testing.T) {
	b := &backend{}
	srv, err := ListenHealth("127.0.0.1:0", b)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + srv.Addr() + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "registering") {
		t.Errorf("/readyz before up = %d %q", code, body)
	}
	b.mu.Lock()
	b.ready = true
	b.mu.Unlock()
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when up = %d", code)
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, (&backend{}).Status(), time.Unix(1003, 0)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"web.mesh.internal", "100.64.0.7", "connected", "db", "3s ago", "127.0.0.1:5000"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

// TestSocketLogoutHonoursTheLogoutTimeout: a logout over the socket gets
// MESH_LOGOUT_TIMEOUT (what Listen is given), not a fixed limit of its own.
func TestSocketLogoutHonoursTheLogoutTimeout(t *testing.T) {
	for _, c := range []struct{ given, want time.Duration }{
		{1500 * time.Millisecond, 1500 * time.Millisecond},
		{0, DefaultLogoutTimeout},
	} {
		path := sockPath(t)
		b := &backend{}
		srv, err := Listen(path, b, nil, c.given)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewClient(path).Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		b.mu.Lock()
		got := b.limit
		b.mu.Unlock()
		// The handler starts the clock a moment before the backend reads it.
		if got > c.want || got < c.want-time.Second {
			t.Errorf("Listen(..., %v): the logout got %v, want %v", c.given, got, c.want)
		}
	}
}
