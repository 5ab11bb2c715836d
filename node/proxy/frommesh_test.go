package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A client that FromMesh reports is closed before the proxy reads a byte
// from it; other clients are served.
func TestFromMeshClientsAreRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	banned := make(chan netip.AddrPort, 1)
	srv := &Server{Dial: testDial, FromMesh: func(remote netip.AddrPort) bool {
		select {
		case b := <-banned:
			banned <- b
			return b == remote
		default:
			return false
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Bind the client first, so its address is known before it connects.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	lc, err := net.Listen("tcp", "127.0.0.1:0") // reserve a port number
	if err != nil {
		t.Fatal(err)
	}
	port := lc.Addr().(*net.TCPAddr).Port
	lc.Close()
	d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	banned <- netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"))
	if n, err := c.Read(make([]byte, 64)); err == nil || n > 0 {
		t.Errorf("a client from the mesh got %d bytes (err %v), want the connection closed", n, err)
	} else if err != io.EOF && !isReset(err) {
		t.Errorf("read: %v, want EOF or reset", err)
	}

	ok := dialProxy(t, ln.Addr().String())
	defer ok.Close()
	ok.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	ok.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := ok.Read(make([]byte, 64)); n == 0 {
		t.Errorf("a local client got no answer: %v", err)
	}
}

func isReset(err error) bool {
	ne, ok := err.(*net.OpError)
	return ok && ne.Err != nil && (ne.Err.Error() == "read: connection reset by peer")
}
