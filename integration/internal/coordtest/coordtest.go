// Package coordtest starts the real meshcoord binary for integration suites:
// a coordinator on a SQLite file in the test's temp dir, reachable at URL,
// administered through its admin socket, stopped when the test ends.
//
//	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: 3 * time.Second})
//	key := c.CreateKey(t, "--ephemeral", "--reusable")
//	// ... start nodes with MESH_COORDINATOR=c.URL MESH_AUTHKEY=key ...
//	c.WaitEvent(t, 10*time.Second, func(e meshapi.Event) bool {
//		return e.Type == meshapi.EventDeleted && e.Reason == meshapi.ReasonLogout
//	})
//
// The server is started with --listen 127.0.0.1:0 (by default) and
// --addr-file; Start waits for the file and for /healthz. Restart starts it
// again on the same database and the same address, after Kill (SIGKILL) or
// Stop (SIGTERM).
package coordtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/netns"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/meshapi"
)

// Options configure Start. Zero values mean the defaults.
type Options struct {
	// Listen is the TCP address (default "127.0.0.1:0": any free port).
	Listen string
	// EphemeralTimeout is --ephemeral-timeout (default: the server's 10m).
	EphemeralTimeout time.Duration
	// ReconnectGrace is --reconnect-grace (default: the server's 5s).
	ReconnectGrace time.Duration
	// DB is the database: a SQLite file (default: coord.db in a temp dir) or
	// a postgres:// URL (default when MESHINIT_COORD_DB=postgres: a fresh
	// database on the test process's PostgreSQL server, see pgtest; over
	// its unix socket with Netns). Pass
	// the DB of an earlier Coordinator to start on the same state.
	DB string
	// Args are extra serve flags.
	Args []string
	// Env is extra environment for the server (KEY=VALUE).
	Env []string
	// Netns runs the server inside this network namespace ("ip netns
	// exec"); the readiness probe connects from inside it too.
	Netns string
}

// Coordinator is a running meshcoord serve.
type Coordinator struct {
	URL         string // http://127.0.0.1:PORT
	Addr        string // 127.0.0.1:PORT
	AdminSocket string
	DB          string
	Binary      string

	opts     Options
	addrFile string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     *syncbuf.Buffer
}

// Start runs meshcoord serve and waits until it answers /healthz. The server
// is stopped (SIGTERM, then SIGKILL) when the test ends; its log is printed
// if the test failed.
func Start(t testing.TB, o Options) *Coordinator {
	t.Helper()
	bin := harness.Binary(t, "meshcoord")
	dir := t.TempDir()
	// Unix socket paths must stay under 108 bytes; test temp dirs can be
	// long, so the socket gets a short directory of its own.
	sockDir, err := os.MkdirTemp("", "mc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.DB == "" {
		o.DB = filepath.Join(dir, "coord.db")
		if pgtest.CoordOnPostgres() {
			pg := pgtest.Shared(t)
			o.DB = pg.NewDatabase(t)
			if o.Netns != "" {
				// The host's 127.0.0.1 is out of reach there; its files are not.
				o.DB = pg.OverSocket(t, o.DB)
			}
		}
	}
	c := &Coordinator{
		AdminSocket: filepath.Join(sockDir, "admin.sock"), DB: o.DB, Binary: bin, opts: o,
		addrFile: filepath.Join(dir, "addr"), logs: &syncbuf.Buffer{},
	}
	t.Cleanup(func() {
		c.Stop(t)
		if t.Failed() {
			t.Logf("meshcoord log:\n%s", c.Logs())
		}
	})
	c.start(t, o.Listen)
	return c
}

func (c *Coordinator) start(t testing.TB, listen string) {
	t.Helper()
	os.Remove(c.addrFile)
	args := []string{"serve", "--listen", listen, "--db", c.DB, "--admin-socket", c.AdminSocket,
		"--addr-file", c.addrFile, "--log-format", "text"}
	if c.opts.EphemeralTimeout > 0 {
		args = append(args, "--ephemeral-timeout", c.opts.EphemeralTimeout.String())
	}
	if c.opts.ReconnectGrace > 0 {
		args = append(args, "--reconnect-grace", c.opts.ReconnectGrace.String())
	}
	args = append(args, c.opts.Args...)
	cmd := exec.Command(c.Binary, args...)
	if c.opts.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", c.opts.Netns, c.Binary}, args...)...)
	}
	cmd.Env = append(os.Environ(), c.opts.Env...)
	fmt.Fprintf(c.logs, "--- start: meshcoord %s\n", strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting meshcoord: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()

	harness.Eventually(t, 20*time.Second, "meshcoord writes its address", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("meshcoord exited at start (%v):\n%s", cmd.ProcessState, c.Logs())
		default:
		}
		b, err := os.ReadFile(c.addrFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false, fmt.Sprintf("no %s yet", c.addrFile)
		}
		c.URL = strings.TrimSpace(string(b))
		return true, ""
	})
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatalf("meshcoord wrote a bad URL %q", c.URL)
	}
	c.Addr = u.Host
	// Readiness only: with --tls-cert the test's certificate is not in the
	// system roots, and this probe of our own loopback server needs no trust.
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if c.opts.Netns != "" {
		probe = netns.HTTPClient(c.opts.Netns, 5*time.Second)
	}
	defer probe.CloseIdleConnections()
	harness.Eventually(t, 10*time.Second, "meshcoord /healthz", func() (bool, string) {
		resp, err := probe.Get(c.URL + meshapi.PathHealth)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// Logs returns everything the server printed so far (all its runs).
func (c *Coordinator) Logs() string { return c.logs.String() }

// Pid is the server's process id.
func (c *Coordinator) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd.Process.Pid
}

// Kill stops the server with SIGKILL (a crash) and waits for it to die.
func (c *Coordinator) Kill(t testing.TB) {
	t.Helper()
	c.signal(t, syscall.SIGKILL, 10*time.Second)
}

// Stop stops the server with SIGTERM (then SIGKILL after 10s) if it runs.
func (c *Coordinator) Stop(t testing.TB) {
	t.Helper()
	c.signal(t, syscall.SIGTERM, 10*time.Second)
}

func (c *Coordinator) signal(t testing.TB, sig syscall.Signal, timeout time.Duration) {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		t.Errorf("meshcoord did not exit %v after %v; killing it", sig, timeout)
		cmd.Process.Kill()
		<-exited
	}
}

// Restart starts the server again on the same database and address. It
// stops a running server first (SIGTERM).
func (c *Coordinator) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.start(t, c.Addr)
}

// CLI runs "meshcoord args..." against this server's admin socket and
// returns its stdout; a non-zero exit fails the test.
func (c *Coordinator) CLI(t testing.TB, args ...string) []byte {
	t.Helper()
	out, errOut, err := c.TryCLI(args...)
	if err != nil {
		t.Fatalf("meshcoord %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// TryCLI is CLI that returns the error (an *exec.ExitError on a non-zero
// exit) and stderr instead of failing.
func (c *Coordinator) TryCLI(args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	cmd.Env = append(os.Environ(), "MESHCOORD_ADMIN_SOCKET="+c.AdminSocket, "MESHCOORD_SERVER=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// CreateKey runs "keys create --json flags..." and returns the full key.
func (c *Coordinator) CreateKey(t testing.TB, flags ...string) string {
	t.Helper()
	out := c.CLI(t, append([]string{"keys", "create", "--json"}, flags...)...)
	var k meshapi.KeyCreateResponse
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		t.Fatalf("keys create --json printed %q: %v", out, err)
	}
	return k.Key
}

// Nodes runs "nodes list --json".
func (c *Coordinator) Nodes(t testing.TB) []meshapi.Node {
	t.Helper()
	out := c.CLI(t, "nodes", "list", "--json")
	var nodes []meshapi.Node
	if err := json.Unmarshal(out, &nodes); err != nil {
		t.Fatalf("nodes list --json printed %q: %v", out, err)
	}
	return nodes
}

// Node returns the node with this name, if listed.
func (c *Coordinator) Node(t testing.TB, name string) (meshapi.Node, bool) {
	t.Helper()
	for _, n := range c.Nodes(t) {
		if n.Name == name {
			return n, true
		}
	}
	return meshapi.Node{}, false
}

// Admin returns an admin API client on the admin socket.
func (c *Coordinator) Admin() *adminclient.Client { return adminclient.NewSocket(c.AdminSocket) }

// Events returns every event so far, oldest first.
func (c *Coordinator) Events(t testing.TB) []meshapi.Event {
	t.Helper()
	var out []meshapi.Event
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Admin().Events(ctx, 0, false, func(e meshapi.Event) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("reading events: %v", err)
	}
	return out
}

// WaitEvent returns the first event, from the very first one the server
// recorded (so an event that happened before the call is found too), for
// which match is true, waiting for new ones up to timeout. Filter on Seq or
// Time to ignore earlier history.
func (c *Coordinator) WaitEvent(t testing.TB, timeout time.Duration, match func(meshapi.Event) bool) meshapi.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var found *meshapi.Event
	var seen []string
	var last uint64
	// The stream ends if the server restarts under us: follow again from
	// the last event seen until the deadline.
	for found == nil && ctx.Err() == nil {
		err := c.Admin().Events(ctx, last, true, func(e meshapi.Event) error {
			last = e.Seq
			if match(e) {
				found = &e
				return adminclient.ErrStop
			}
			seen = append(seen, fmt.Sprintf("%d %s %s(%d) %s %s", e.Seq, e.Type, e.Name, e.NodeID, e.Reason, e.Detail))
			return nil
		})
		if err != nil && found == nil && ctx.Err() == nil {
			// Server restarting or briefly unreachable: poll again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if found == nil {
		t.Fatalf("no matching event within %v; events seen:\n  %s", timeout, strings.Join(seen, "\n  "))
	}
	return *found
}
