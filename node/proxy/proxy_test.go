package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/testnet"
)

// testDial resolves the one name the tests use ("web.mesh") and dials only
// loopback, as the node's dial function would route mesh names.
func testDial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	switch host {
	case "web.mesh":
		host = "127.0.0.1"
	case "nowhere.mesh":
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer only reaches loopback, not %q", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// startProxy runs a Server on a loopback port until the test ends.
func startProxy(t *testing.T) (addr string, ln *countingListener) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: inner}
	s := &Server{Dial: testDial, HandshakeTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), ln
}

// startEcho runs a line echo on network/addr until the test ends: each
// line comes back prefixed with "echo: ".
func startEcho(t *testing.T, network, addr string) uint16 {
	t.Helper()
	return testnet.Serve(t, network, addr, testnet.EchoLines("echo"))
}

func dialProxy(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// socksConnect does a SOCKS5 no-auth CONNECT with the given address
// bytes (ATYP and address) and returns the reply code.
func socksConnect(t *testing.T, c net.Conn, atypAddr []byte, port uint16) byte {
	t.Helper()
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	var method [2]byte
	if _, err := io.ReadFull(c, method[:]); err != nil {
		t.Fatalf("method reply: %v", err)
	}
	if method != [2]byte{5, 0} {
		t.Fatalf("method reply %v, want no-auth", method)
	}
	req := append([]byte{5, 1, 0}, atypAddr...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	return readSocksReply(t, c)
}

func readSocksReply(t *testing.T, c net.Conn) byte {
	t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reply: %v", err)
	}
	n := 4
	if hdr[3] == 4 {
		n = 16
	}
	rest := make([]byte, n+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatalf("reply address: %v", err)
	}
	return hdr[1]
}

func echoThrough(t *testing.T, c net.Conn) {
	t.Helper()
	r := bufio.NewReader(c)
	for _, line := range []string{"one", "two"} {
		fmt.Fprintf(c, "%s\n", line)
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("through the proxy: %v", err)
		}
		if got != "echo: "+line+"\n" {
			t.Fatalf("through the proxy: got %q", got)
		}
	}
}

func TestSOCKS5Connect(t *testing.T) {
	addr, _ := startProxy(t)
	port4 := startEcho(t, "tcp4", "127.0.0.1:0")
	port6 := startEcho(t, "tcp6", "[::1]:0")
	name := "web.mesh"
	cases := []struct {
		name string
		atyp []byte
		port uint16
	}{
		{"domain", append([]byte{3, byte(len(name))}, name...), port4},
		{"ipv4", []byte{1, 127, 0, 0, 1}, port4},
		{"ipv6", append([]byte{4}, netip.IPv6Loopback().AsSlice()...), port6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			if code := socksConnect(t, c, tc.atyp, tc.port); code != socksSucceeded {
				t.Fatalf("reply code %d, want success", code)
			}
			echoThrough(t, c)
		})
	}
}

func TestSOCKS5Refusals(t *testing.T) {
	addr, _ := startProxy(t)
	port := startEcho(t, "tcp4", "127.0.0.1:0")
	closed := testnet.ClosedPort(t)
	t.Run("auth required", func(t *testing.T) {
		c := dialProxy(t, addr)
		c.Write([]byte{5, 1, 2}) // only username/password offered
		var reply [2]byte
		if _, err := io.ReadFull(c, reply[:]); err != nil || reply != [2]byte{5, 0xff} {
			t.Errorf("reply %v, %v; want 5 255 (no acceptable method)", reply, err)
		}
	})
	codes := []struct {
		name string
		req  []byte // after the method negotiation
		want byte
	}{
		{"bind command", []byte{5, 2, 0, 1, 127, 0, 0, 1, byte(port >> 8), byte(port)}, socksCommandNotSupported},
		{"udp associate", []byte{5, 3, 0, 1, 127, 0, 0, 1, 0, 53}, socksCommandNotSupported},
		{"unknown address type", []byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, socksAddrNotSupported},
		{"refused", []byte{5, 1, 0, 1, 127, 0, 0, 1, byte(closed >> 8), byte(closed)}, socksConnectionRefused},
		{"unknown name", append(append([]byte{5, 1, 0, 3, 12}, "nowhere.mesh"...), 0, 80), socksHostUnreachable},
		{"bad name", append(append([]byte{5, 1, 0, 3, 5}, "a b/c"...), 0, 80), socksHostUnreachable},
		{"port zero", []byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 0}, socksGeneralFailure},
	}
	for _, tc := range codes {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			c.Write([]byte{5, 1, 0})
			var m [2]byte
			io.ReadFull(c, m[:])
			c.Write(tc.req)
			if got := readSocksReply(t, c); got != tc.want {
				t.Errorf("reply code %d, want %d", got, tc.want)
			}
			// The proxy then closes the connection.
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("after the refusal: %v, want EOF", err)
			}
		})
	}
	t.Run("socks4", func(t *testing.T) {
		c := dialProxy(t, addr)
		c.Write([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})
		var reply [8]byte
		if _, err := io.ReadFull(c, reply[:]); err != nil || reply[1] != 91 {
			t.Errorf("SOCKS4 reply %v, %v; want code 91 (rejected)", reply, err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		c := dialProxy(t, addr)
		c.Write([]byte{5, 1, 0, 5, 1})
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		if len(b) != 2 { // only the method choice; no reply to a half request
			t.Errorf("got %v after a truncated request", b)
		}
	})
}

func TestHTTPConnect(t *testing.T) {
	addr, _ := startProxy(t)
	port := startEcho(t, "tcp4", "127.0.0.1:0")
	c := dialProxy(t, addr)
	// The first line for the tunnel is sent right behind the request: the
	// proxy must pass on bytes it buffered while reading the head.
	fmt.Fprintf(c, "CONNECT web.mesh:%d HTTP/1.1\r\nHost: web.mesh:%d\r\n\r\none\n", port, port)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT status %d", resp.StatusCode)
	}
	if got, _ := r.ReadString('\n'); got != "echo: one\n" {
		t.Fatalf("first line through the tunnel: %q", got)
	}
	fmt.Fprintf(c, "two\n")
	if got, _ := r.ReadString('\n'); got != "echo: two\n" {
		t.Fatalf("second line: %q", got)
	}
}

func TestHTTPAbsoluteURIWithKeepAlive(t *testing.T) {
	addr, proxyLn := startProxy(t)
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var upstreamConns atomic.Int32
	var mu sync.Mutex
	var hopHeaderSeen []string
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "X-Hop"} {
				if r.Header.Get(h) != "" {
					hopHeaderSeen = append(hopHeaderSeen, h)
				}
			}
			mu.Unlock()
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path == "/b" {
				// Flushing before the body forces a chunked response,
				// which must keep the client connection reusable too.
				w.(http.Flusher).Flush()
			}
			fmt.Fprintf(w, "%s %s host=%s body=%q", r.Method, r.URL.RequestURI(), r.Host, body)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				upstreamConns.Add(1)
			}
		},
	}
	go srv.Serve(upstream)
	t.Cleanup(func() { srv.Close() })
	port := upstream.Addr().(*net.TCPAddr).Port

	proxyURL, _ := url.Parse("http://" + addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for i, target := range []string{"/a?x=1", "/b", "/c"} {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://web.mesh:%d%s", port, target), strings.NewReader(fmt.Sprint("payload", i)))
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "only for the proxy")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if target == "/b" && len(resp.TransferEncoding) == 0 {
			t.Errorf("request %d: expected a chunked response to pass through, got Content-Length %d", i, resp.ContentLength)
		}
		want := fmt.Sprintf("POST %s host=web.mesh:%d body=%q", target, port, fmt.Sprint("payload", i))
		if string(body) != want {
			t.Errorf("request %d: body %q, want %q", i, body, want)
		}
	}
	if n := proxyLn.accepted.Load(); n != 1 {
		t.Errorf("client opened %d connections to the proxy, want 1 (keep-alive)", n)
	}
	if n := upstreamConns.Load(); n != 1 {
		t.Errorf("proxy opened %d connections upstream, want 1 (keep-alive)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hopHeaderSeen) != 0 {
		t.Errorf("hop-by-hop headers reached the server: %v", hopHeaderSeen)
	}
}

func TestHTTPRefusals(t *testing.T) {
	addr, _ := startProxy(t)
	closed := testnet.ClosedPort(t)
	cases := []struct {
		name, request string
		status        int
		mention       string
	}{
		{"origin form", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 400, "absolute URI"},
		{"https absolute", "GET https://web.mesh/ HTTP/1.1\r\nHost: web.mesh\r\n\r\n", 400, "CONNECT"},
		{"connect without port", "CONNECT web.mesh HTTP/1.1\r\nHost: web.mesh\r\n\r\n", 400, "host:port"},
		{"connect refused", fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", closed), 502, "refused"},
		{"upstream refused", fmt.Sprintf("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", closed), 502, "refused"},
		{"malformed", "GET\r\n\r\n", 400, "malformed"},
		{"bad first byte", "\x00\x01\x02", 400, "SOCKS5 and HTTP"},
		{"header too large", "GET http://web.mesh/ HTTP/1.1\r\nX: " + strings.Repeat("a", maxHeaderBytes+10) + "\r\n\r\n", 431, "1 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			go io.WriteString(c, tc.request) // may block on a large head the proxy stops reading
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(string(body), tc.mention) {
				t.Errorf("body %q does not mention %q", body, tc.mention)
			}
		})
	}
}

func TestCloseEndsProxiedConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dial: testDial}
	go s.Serve(inner)
	port := startEcho(t, "tcp4", "127.0.0.1:0")
	c := dialProxy(t, inner.Addr().String())
	if code := socksConnect(t, c, []byte{1, 127, 0, 0, 1}, port); code != socksSucceeded {
		t.Fatalf("connect: %d", code)
	}
	echoThrough(t, c)
	s.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("proxied connection still open after Close")
	}
}
