package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func FuzzSOCKS5Handshake(f *testing.F) {
	seeds := [][]byte{
		{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80},
		append(append([]byte{5, 2, 0, 2, 5, 1, 0, 3, 8}, "web.mesh"...), 0x1f, 0x90),
		append([]byte{5, 1, 0, 5, 1, 0, 4}, append(make([]byte, 15), 1, 0, 80)...),
		{5, 0},
		{5, 1, 2},
		{5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80},
		{5, 1, 0, 5, 1, 0, 9},
		{5, 1, 0, 5, 1, 0, 3, 0, 0, 80},
		{4, 1, 0, 80},
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		noAuth, err := readSOCKS5Greeting(r)
		if err != nil || !noAuth {
			return
		}
		target, err := readSOCKS5Request(r)
		if err != nil {
			var se *socksError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a socksError", err)
			}
			return
		}
		host, port, err := net.SplitHostPort(target)
		if err != nil || host == "" || port == "0" {
			t.Fatalf("accepted target %q: %v", target, err)
		}
	})
}

func FuzzHTTPProxyRequest(f *testing.F) {
	for _, s := range []string{
		"GET http://web.mesh/x HTTP/1.1\r\nHost: web.mesh\r\n\r\n",
		"CONNECT web.mesh:443 HTTP/1.1\r\nHost: web.mesh:443\r\n\r\n",
		"POST http://[fd7a::2]:8080/p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\n\r\n",
		"CONNECT :0 HTTP/1.1\r\n\r\n",
		"GET ftp://x/ HTTP/1.0\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pr, err := readProxyRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(pr.target)
		if err != nil || host == "" || checkPort(port) != nil {
			t.Fatalf("accepted target %q from %q", pr.target, in)
		}
		if !pr.connect && pr.req.URL.Scheme != "http" {
			t.Fatalf("forwarding scheme %q", pr.req.URL.Scheme)
		}
	})
}

// FuzzServeConn feeds arbitrary bytes to a whole client connection: the
// proxy must answer or close, never panic or hang, whatever comes.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
		"\x05\x01\x00\x05\x01\x00\x03\x08web.mesh\x00\x50",
		"GET http://web.mesh/ HTTP/1.1\r\nHost: web.mesh\r\n\r\nGET http://web.mesh/2 HTTP/1.1\r\n\r\n",
		"CONNECT web.mesh:80 HTTP/1.1\r\n\r\nhello",
		"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",
		"\xff\xfe",
		"G",
	} {
		f.Add([]byte(s))
	}
	s := &Server{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			return nil, errors.New("fuzz: no network")
		},
		HandshakeTimeout: time.Second,
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &scriptConn{in: bytes.NewReader(in)}
		done := make(chan struct{})
		go func() {
			s.ServeConn(c)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeConn did not return for input %q", in)
		}
	})
}

// scriptConn is a client connection that sends a fixed script and then
// EOF, and discards what the proxy answers.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if err == io.EOF {
		return n, io.EOF
	}
	return n, err
}
func (c *scriptConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1055}
}
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
