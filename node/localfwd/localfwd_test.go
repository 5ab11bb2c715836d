package localfwd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/node/hostport"
)

func TestParse(t *testing.T) {
	rules, err := Parse("5432:db:5432, 6379:cache.mesh.internal:6379,8080:[fd7a::2]:80")
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{5432, hostport.HostPort{Host: "db", Port: 5432}},
		{6379, hostport.HostPort{Host: "cache.mesh.internal", Port: 6379}},
		{8080, hostport.HostPort{Host: "fd7a::2", Port: 80}},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %+v", rules)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
	if rules[2].String() != "8080:[fd7a::2]:80" {
		t.Errorf("String() = %q", rules[2].String())
	}
	if r, err := Parse(""); err != nil || r != nil {
		t.Errorf("empty: %+v, %v", r, err)
	}
}

func TestParseQuotesTheBadEntry(t *testing.T) {
	for in, want := range map[string]string{
		"5432:db":                       `entry "5432:db": want LOCAL_PORT:NAME:PORT`,
		"5432:db:5432,db:5432":          `entry "db:5432": want LOCAL_PORT:NAME:PORT`,
		"x:db:5432":                     `entry "x:db:5432": local port: "x" is not a port`,
		"0:db:5432":                     `entry "0:db:5432": local port`,
		"5432:db:99999":                 `entry "5432:db:99999": "99999" is not a port`,
		"5432:d!b:1":                    `entry "5432:d!b:1": "d!b" is not a valid name`,
		"5432:db:5432,,6379:cache:1":    `entry ""`,
		"5432:db:5432, 5432:cache:6379": `entries "5432:db:5432" and "5432:cache:6379" both listen on local port 5432`,
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want %q", in, err, want)
		}
	}
}

// countServer reads each connection to its end, then answers with the
// number of bytes it read and closes: it only answers if the client's
// half-close came through. It returns its port.
func countServer(t *testing.T) string {
	port := testnet.Serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
	return strconv.Itoa(int(port))
}

// forwarders listens for rules and dials through a fake map: names in
// peers go to their address, every other name fails as DialMesh does.
func forwarders(t *testing.T, spec string, peers map[string]string, log *slog.Logger) (*Forwarders, *countingDial) {
	t.Helper()
	rules, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Listen(rules)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	d := &countingDial{peers: peers}
	f.Serve(d.dial, log)
	return f, d
}

type countingDial struct {
	peers map[string]string
	mu    sync.Mutex
	calls []string
}

func (d *countingDial) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

var errNotInMap = errors.New("no such node in the mesh")

func (d *countingDial) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.calls = append(d.calls, address)
	d.mu.Unlock()
	host, port, _ := net.SplitHostPort(address)
	target, ok := d.peers[host]
	if !ok {
		return nil, errNotInMap
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, strings.Replace(target, "PORT", port, 1))
}

// freePort is a local port nobody listens on, for a rule to take.
func freePort(t *testing.T) uint16 { return testnet.ClosedPort(t) }

// A client sends, half-closes, and still gets the answer the server sends
// after it saw the end of the request.
func TestForwardCarriesHalfClose(t *testing.T) {
	port := countServer(t)
	local := freePort(t)
	f, d := forwarders(t, strconv.Itoa(int(local))+":db:"+port, map[string]string{"db": "127.0.0.1:PORT"}, nil)

	c, err := net.Dial("tcp", f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	payload := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		t.Fatalf("no answer after the half-close: %v", err)
	}
	if n := binary.BigEndian.Uint64(count[:]); n != uint64(len(payload)) {
		t.Fatalf("server read %d bytes, sent %d", n, len(payload))
	}
	if _, err := c.Read(count[:]); err != io.EOF {
		t.Fatalf("after the answer: %v, want EOF", err)
	}
	if calls := d.dialled(); len(calls) != 1 || calls[0] != "db:"+port {
		t.Fatalf("dialled %v", calls)
	}
}

// A peer that is not in the map: the connection is closed (EOF, not a
// hang) and a line is logged naming the rule.
func TestPeerNotInMapClosesAndLogs(t *testing.T) {
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	local := freePort(t)
	f, d := forwarders(t, strconv.Itoa(int(local))+":ghost:5432", nil, log)
	c, err := net.Dial("tcp", f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d bytes, %v; want EOF", n, err)
	}
	if calls := d.dialled(); len(calls) != 1 {
		t.Fatalf("dials %v, want 1", calls)
	}
	line := buf.String()
	if !strings.Contains(line, "cannot reach the peer") || !strings.Contains(line, "remote=ghost:5432") || !strings.Contains(line, "no such node") {
		t.Fatalf("log: %q", line)
	}
}

// A taken local port fails Listen with an error naming the port, and the
// ports opened before it are released.
func TestTakenLocalPortIsNamed(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	first := freePort(t)
	rules, err := Parse(strconv.Itoa(int(first)) + ":db:1," + strconv.Itoa(takenPort) + ":cache:2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Listen(rules)
	var le *ListenError
	if !errors.As(err, &le) || le.Rule.Local != uint16(takenPort) {
		t.Fatalf("Listen: %v, want a ListenError for port %d", err, takenPort)
	}
	if !strings.Contains(err.Error(), "local port "+strconv.Itoa(takenPort)) {
		t.Fatalf("message does not name the port: %v", err)
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(first))))
	if err != nil {
		t.Fatalf("the first rule's port was not released: %v", err)
	}
	ln.Close()
}

// Close ends a forwarded connection that is still open.
func TestCloseEndsConnections(t *testing.T) {
	port := countServer(t)
	f, _ := forwarders(t, strconv.Itoa(int(freePort(t)))+":db:"+port, map[string]string{"db": "127.0.0.1:PORT"}, nil)
	c, err := net.Dial("tcp", f.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Close() }()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data after Close")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"5432:db:5432", "1:[::1]:2,3:a.b:4", "5432:db", ":::", "1:db:1,1:db:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules, err := Parse(s)
		if err != nil {
			return
		}
		parts := make([]string, len(rules))
		for i, r := range rules {
			parts[i] = r.String()
		}
		again, err := Parse(strings.Join(parts, ","))
		if err != nil || len(again) != len(rules) {
			t.Fatalf("%q parsed to %v, which does not parse back: %v", s, rules, err)
		}
		for i := range rules {
			if again[i] != rules[i] {
				t.Fatalf("%q: rule %d %+v became %+v", s, i, rules[i], again[i])
			}
		}
	})
}
