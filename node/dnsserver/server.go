package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/node/nametable"
)

// Limits on work in flight: queries beyond them are dropped (UDP; the
// client retries) or their connections closed (TCP).
const (
	maxUDPInFlight = 256
	maxTCPConns    = 64
	// tcpIdleTimeout closes a TCP connection that sent no query for this
	// long (RFC 7766 suggests seconds).
	tcpIdleTimeout = 10 * time.Second
)

// Config is what the server answers from and forwards to.
type Config struct {
	// Names is the node's name table, kept by the map stream. Required.
	Names *nametable.Table
	// Upstreams get every query the mesh does not answer, in order.
	Upstreams []netip.AddrPort
	// ForwardTimeout bounds one try at one upstream; 0 means
	// DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// Log gets a line per failed forward (debug) and per server problem;
	// nil discards.
	Log *slog.Logger
}

// Server is a running resolver. Close stops it.
type Server struct {
	names *nametable.Table
	fwd   forwarder
	log   *slog.Logger
	udp   *net.UDPConn
	tcp   *net.TCPListener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	udpIn  chan struct{} // a slot per UDP query in flight
	tcpIn  chan struct{} // a slot per open TCP connection

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	ipv4Only atomic.Bool // see SetIPv4Only
}

// SetIPv4Only makes mesh names answer with A records only (AAAA: no data,
// never NXDOMAIN), for a node without IPv6 (a TUN interface where IPv6 is
// disabled): its apps then never try a mesh address they have no route
// to. It applies from the next query on.
func (s *Server) SetIPv4Only(on bool) { s.ipv4Only.Store(on) }

// Listen opens UDP and TCP on addr ("127.0.0.153:53"; port 0 picks one
// free for both) and serves at once.
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.Names == nil {
		return nil, errors.New("dnsserver: Config.Names is nil")
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("resolver address %q: %w", addr, err)
	}
	udp, tcp, err := listenBoth(ap)
	if err != nil {
		return nil, err
	}
	s := &Server{
		names: cfg.Names,
		fwd:   forwarder{upstreams: cfg.Upstreams, timeout: cfg.ForwardTimeout},
		log:   cfg.Log,
		udp:   udp, tcp: tcp,
		udpIn: make(chan struct{}, maxUDPInFlight),
		tcpIn: make(chan struct{}, maxTCPConns),
		conns: map[net.Conn]struct{}{},
	}
	if s.fwd.timeout <= 0 {
		s.fwd.timeout = DefaultForwardTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return s, nil
}

// listenBoth binds UDP and TCP on the same port; with port 0 it retries
// until a port is free for both.
func listenBoth(ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, fmt.Errorf("cannot listen on %s (UDP): %w", ap, err)
		}
		port := udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), port)))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			return nil, nil, fmt.Errorf("cannot listen on %s (TCP): %w", netip.AddrPortFrom(ap.Addr(), port), err)
		}
	}
}

// Addr is where the server listens (UDP and TCP).
func (s *Server) Addr() netip.AddrPort {
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// respond is the answer to one query: from the map, or from upstream, or
// SERVFAIL when no upstream answered; nil to drop a non-query.
func (s *Server) respond(msg []byte, overTCP bool) []byte {
	resp, forwardIt := answer(s.names, msg, s.ipv4Only.Load())
	if !forwardIt {
		return resp
	}
	return s.forward(msg, overTCP)
}

// forward is the upstreams' answer to msg, or SERVFAIL.
func (s *Server) forward(msg []byte, overTCP bool) []byte {
	resp, err := s.fwd.exchange(s.ctx, msg, overTCP)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Debug("forwarding a query failed; answering SERVFAIL", "err", err)
		}
		return serverFailure(msg)
	}
	return resp
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors from an earlier reply: not fatal
		}
		// Answers from the map are computed here, without a goroutine:
		// they never block. Only forwards, which wait on an upstream, get
		// their own.
		resp, forwardIt := answer(s.names, buf[:n], s.ipv4Only.Load())
		if !forwardIt {
			if resp != nil {
				s.udp.WriteToUDPAddrPort(resp, from)
			}
			continue
		}
		select {
		case s.udpIn <- struct{}{}:
		default:
			continue // too many in flight: the client will ask again
		}
		msg := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.udpIn }()
			if resp := s.forward(msg, false); resp != nil {
				s.udp.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("resolver: accepting a TCP connection", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		select {
		case s.tcpIn <- struct{}{}:
		default:
			c.Close()
			continue
		}
		if !s.track(c) {
			c.Close()
			<-s.tcpIn
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.tcpIn }()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

// serveConn answers the queries of one TCP connection in order.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
		msg, err := readFrame(c)
		if err != nil {
			return
		}
		resp := s.respond(msg, true)
		if resp == nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := c.Write(frame(resp)); err != nil {
			return
		}
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// Close stops serving, ends forwards in flight and waits for them.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	for c := range conns {
		c.Close()
	}
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil // closed twice
	}
	return err
}
