// Package testnet has the small TCP fixtures that tests of several packages
// share: a server that lives as long as the test, a line echo to put behind
// it, and a loopback port nobody listens on. Unit tests give Serve loopback
// addresses only (the tests' network rule); integration helpers hand
// ServeListener a listener of their own inside a namespace they made.
package testnet

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"testing"
)

// Serve listens on network ("tcp", "tcp4" or "tcp6") at address (a
// loopback address with port 0 for a free one) and calls handle on its own
// goroutine for every connection, closing the connection when handle
// returns. The listener closes when the test ends. Serve returns the port.
func Serve(t testing.TB, network, address string, handle func(net.Conn)) uint16 {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go ServeListener(ln, handle)
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// ServeListener accepts connections on ln until it is closed and calls
// handle on its own goroutine for each, closing the connection when handle
// returns. It is Serve for a listener the caller made (a helper process
// without a testing.T, a listener on a chosen port).
func ServeListener(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// EchoLines is a connection handler that answers every line it reads with
// "prefix: line", until the peer stops sending.
func EchoLines(prefix string) func(net.Conn) {
	return func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if _, err := fmt.Fprintf(c, "%s: %s\n", prefix, sc.Text()); err != nil {
				return
			}
		}
	}
}

// SHA256Sink is a connection handler that reads until the peer
// half-closes and answers with the hex SHA-256 of everything it read: a
// transfer arrived intact when the sender's digest matches.
func SHA256Sink(c net.Conn) {
	h := sha256.New()
	io.Copy(h, c)
	fmt.Fprintf(c, "%x", h.Sum(nil))
}

// ClosedPort returns a TCP port on 127.0.0.1 that nobody listens on, so a
// dial to it is refused. The port was bound and released a moment ago; the
// kernel picks free ports from the whole ephemeral range, so another
// listener taking this one before the test dials it is unlikely, not
// impossible.
func ClosedPort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}
