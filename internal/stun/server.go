package stun

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
)

// Server answers binding requests on a UDP socket. Anything else is
// ignored: a STUN server must not become a reflector for other traffic.
type Server struct {
	pc       *net.UDPConn
	log      *slog.Logger
	answered atomic.Uint64
	ignored  atomic.Uint64
}

// Listen opens addr ("host:port") for STUN.
func Listen(addr string, log *slog.Logger) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{pc: pc, log: log}, nil
}

// Addr is the socket's local address.
func (s *Server) Addr() *net.UDPAddr { return s.pc.LocalAddr().(*net.UDPAddr) }

// Serve answers requests until Close.
func (s *Server) Serve() error {
	buf := make([]byte, maxMessage+1)
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Debug("stun read", "err", err)
			continue
		}
		tx, err := ParseRequest(buf[:n])
		if err != nil {
			s.ignored.Add(1)
			continue
		}
		s.answered.Add(1)
		if _, err := s.pc.WriteToUDPAddrPort(Response(tx, from), from); err != nil {
			s.log.Debug("stun answer", "to", from.String(), "err", err)
		}
	}
}

// Counts returns how many requests were answered and how many datagrams
// were ignored.
func (s *Server) Counts() (answered, ignored uint64) { return s.answered.Load(), s.ignored.Load() }

// Close stops Serve.
func (s *Server) Close() error { return s.pc.Close() }
