// Package proxy is the app's door into the mesh in userspace mode: one local
// port that speaks SOCKS5 (no authentication, CONNECT, names resolved by the
// proxy so socks5h:// works) and HTTP (CONNECT tunnels and absolute-URI
// requests with keep-alive), told apart by the first byte the client sends.
//
// The proxy knows nothing about the mesh: every connection it makes goes
// through the Dial function it is given, which decides where "host:port"
// leads (the node sends mesh names and addresses into the tunnel and
// everything else to the normal network).
package proxy

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// DialFunc opens a connection to address ("host:port", host being an IP
// literal or an unresolved name).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// DefaultHandshakeTimeout bounds how long a client may take to say where it
// wants to go (and, with HTTP keep-alive, to send its next request).
const DefaultHandshakeTimeout = 30 * time.Second

// DefaultDialTimeout bounds one dial.
const DefaultDialTimeout = 30 * time.Second

// Server is a SOCKS5 + HTTP proxy. Set Dial, then call Serve.
type Server struct {
	// Dial makes every outgoing connection. Required.
	Dial DialFunc
	// Log receives a line per refused or failed request; nil discards.
	Log *slog.Logger
	// HandshakeTimeout: 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// DialTimeout: 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// FromMesh, if set, reports whether a client at this address came in
	// from the mesh (a peer's connection the node forwarded to loopback).
	// Such clients are closed at once: the proxy is the app's door out, and
	// a peer using it would reach everything the node can reach.
	FromMesh func(remote netip.AddrPort) bool

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	tr        *http.Transport
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("proxy: server closed")

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Serve accepts connections on ln until Close; it always returns an error,
// ErrServerClosed after Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.Dial == nil {
		return errors.New("proxy: Server.Dial is nil")
	}
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors: wait for connections to end.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log().Warn("proxy: accept failed, retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.fromMesh(c) {
			s.log().Warn("proxy: refused a connection that came in from the mesh", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.untrack(c)
			s.ServeConn(c)
		}()
	}
}

func (s *Server) fromMesh(c net.Conn) bool {
	if s.FromMesh == nil {
		return false
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	return ok && s.FromMesh(ta.AddrPort())
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close stops every Serve, ends every proxied connection and waits for
// their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	tr := s.tr
	s.mu.Unlock()
	s.cancel()
	if tr != nil {
		tr.CloseIdleConnections()
	}
	s.wg.Wait()
	return nil
}

// ServeConn speaks to one client connection until it is done. Serve calls
// it per accepted connection; it is exported for callers that accept
// connections themselves.
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	s.init()
	ctx := s.ctx
	s.mu.Unlock()
	s.setHandshakeDeadline(c)
	lim := &readLimit{src: c, left: -1}
	r := bufio.NewReader(lim)
	first, err := r.Peek(1)
	if err != nil {
		return // closed before saying anything
	}
	switch b := first[0]; {
	case b == socks5Version:
		s.serveSOCKS5(ctx, c, r)
	case b == 0x04:
		// SOCKS4 reply "request rejected" (VN 0, CD 91), then close.
		c.Write([]byte{0, 91, 0, 0, 0, 0, 0, 0})
		s.log().Info("proxy: SOCKS4 client refused; use SOCKS5 (socks5h://)", "client", c.RemoteAddr().String())
	case b >= 'A' && b <= 'Z':
		s.serveHTTP(ctx, c, r, lim)
	default:
		writeHTTPError(c, http.StatusBadRequest, "this port speaks SOCKS5 and HTTP proxy requests; the first byte was neither")
		s.log().Info("proxy: unknown protocol", "client", c.RemoteAddr().String(), "first_byte", b)
	}
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

func (s *Server) setHandshakeDeadline(c net.Conn) {
	c.SetDeadline(time.Now().Add(s.handshakeTimeout()))
}

func (s *Server) clearHandshakeDeadline(c net.Conn) { c.SetDeadline(time.Time{}) }

// dial makes one outgoing TCP connection, bounded by DialTimeout.
func (s *Server) dial(ctx context.Context, target string) (net.Conn, error) {
	t := s.DialTimeout
	if t <= 0 {
		t = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	return s.Dial(ctx, "tcp", target)
}

// relay clears the handshake deadline and pipes client and upstream
// together; bytes the client sent early (already buffered in r) go first.
func (s *Server) relay(c net.Conn, r *bufio.Reader, up net.Conn) {
	s.clearHandshakeDeadline(c)
	var client net.Conn = c
	if r.Buffered() > 0 {
		client = &bufferedConn{Conn: c, r: r}
	}
	Relay(client, up)
}

// transport is the HTTP client side for absolute-URI requests, shared by
// all client connections so upstream connections are reused.
func (s *Server) transport() *http.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		s.tr = &http.Transport{
			Proxy: nil, // we are the proxy
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return s.dial(ctx, addr)
			},
			DisableCompression:    true, // pass bodies through as they are
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0, // a slow upstream is the app's business
		}
	}
	return s.tr
}

// bufferedConn reads through the handshake's bufio.Reader first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}
