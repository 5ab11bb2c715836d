package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// SOCKS5, RFC 1928: no authentication, CONNECT only. Names are passed to the
// dial function unresolved, so the proxy resolves them (socks5h://).

const (
	socks5Version = 0x05

	socksMethodNoAuth       = 0x00
	socksMethodNoAcceptable = 0xff

	socksCmdConnect = 0x01

	socksAtypIPv4   = 0x01
	socksAtypDomain = 0x03
	socksAtypIPv6   = 0x04
)

// Reply codes (RFC 1928 §6).
const (
	socksSucceeded           = 0x00
	socksGeneralFailure      = 0x01
	socksNetworkUnreachable  = 0x03
	socksHostUnreachable     = 0x04
	socksConnectionRefused   = 0x05
	socksTTLExpired          = 0x06
	socksCommandNotSupported = 0x07
	socksAddrNotSupported    = 0x08
)

// socksError is a handshake failure with the reply code to send.
type socksError struct {
	code byte // 0 means: no reply possible, just close
	err  error
}

func (e *socksError) Error() string { return e.err.Error() }
func (e *socksError) Unwrap() error { return e.err }

func socksErr(code byte, format string, args ...any) *socksError {
	return &socksError{code: code, err: fmt.Errorf(format, args...)}
}

// readSOCKS5Greeting reads the method negotiation and reports whether the
// client offers "no authentication", the only method we speak.
func readSOCKS5Greeting(r *bufio.Reader) (noAuth bool, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false, socksErr(0, "SOCKS5 greeting: %w", noEOF(err))
	}
	if hdr[0] != socks5Version {
		return false, socksErr(0, "SOCKS5 greeting: version %d, want 5", hdr[0])
	}
	if hdr[1] == 0 {
		return false, socksErr(0, "SOCKS5 greeting offers no authentication methods")
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return false, socksErr(0, "SOCKS5 greeting: %w", noEOF(err))
	}
	for _, m := range methods {
		if m == socksMethodNoAuth {
			return true, nil
		}
	}
	return false, nil
}

// readSOCKS5Request reads a CONNECT request and returns its target as
// "host:port", host being an IP literal or an unresolved name.
func readSOCKS5Request(r *bufio.Reader) (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", socksErr(0, "SOCKS5 request: %w", noEOF(err))
	}
	if hdr[0] != socks5Version {
		return "", socksErr(socksGeneralFailure, "SOCKS5 request: version %d, want 5", hdr[0])
	}
	if hdr[2] != 0 {
		return "", socksErr(socksGeneralFailure, "SOCKS5 request: reserved byte is %d, want 0", hdr[2])
	}
	var host string
	switch hdr[3] {
	case socksAtypIPv4:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", socksErr(0, "SOCKS5 request: IPv4 address: %w", noEOF(err))
		}
		host = netip.AddrFrom4(b).String()
	case socksAtypIPv6:
		var b [16]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", socksErr(0, "SOCKS5 request: IPv6 address: %w", noEOF(err))
		}
		host = netip.AddrFrom16(b).String()
	case socksAtypDomain:
		n, err := r.ReadByte()
		if err != nil {
			return "", socksErr(0, "SOCKS5 request: name length: %w", noEOF(err))
		}
		if n == 0 {
			return "", socksErr(socksHostUnreachable, "SOCKS5 request: empty host name")
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return "", socksErr(0, "SOCKS5 request: host name: %w", noEOF(err))
		}
		if err := checkHostName(string(name)); err != nil {
			return "", socksErr(socksHostUnreachable, "SOCKS5 request: %w", err)
		}
		host = string(name)
	default:
		return "", socksErr(socksAddrNotSupported, "SOCKS5 request: address type %d unknown (want 1 IPv4, 3 name, 4 IPv6)", hdr[3])
	}
	var pb [2]byte
	if _, err := io.ReadFull(r, pb[:]); err != nil {
		return "", socksErr(0, "SOCKS5 request: port: %w", noEOF(err))
	}
	port := binary.BigEndian.Uint16(pb[:])
	// The command is checked last so that the whole request has been read
	// and the reply can still be sent on a well-framed stream.
	if hdr[1] != socksCmdConnect {
		return "", socksErr(socksCommandNotSupported, "SOCKS5 request: command %d not supported (only CONNECT, 1)", hdr[1])
	}
	if port == 0 {
		return "", socksErr(socksGeneralFailure, "SOCKS5 request: port 0")
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

// checkHostName accepts an IP literal or a host name made of letters,
// digits, '-', '_' and '.', at most 253 bytes. It is not a full RFC 1123
// validator; it keeps out what would break "host:port" or a resolver.
func checkHostName(name string) error {
	if _, err := netip.ParseAddr(name); err == nil {
		return nil
	}
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("host name of %d bytes: want 1 to 253", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("host name %q: %q is not allowed in a name (letters, digits, '-', '_', '.')", name, c)
		}
	}
	return nil
}

// socksReply encodes a reply with the bound address (zero when unknown).
func socksReply(code byte, bound net.Addr) []byte {
	ap := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if ta, ok := bound.(*net.TCPAddr); ok && ta != nil {
		ap = ta.AddrPort()
	}
	a := ap.Addr().Unmap()
	b := []byte{socks5Version, code, 0}
	if a.Is4() {
		b = append(b, socksAtypIPv4)
	} else {
		b = append(b, socksAtypIPv6)
	}
	b = append(b, a.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// socksDialCode maps a dial error to the closest SOCKS5 reply code.
func socksDialCode(err error) byte {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return socksConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return socksNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return socksHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return socksTTLExpired
	}
	return socksGeneralFailure
}

// serveSOCKS5 runs the handshake on c, dials, and relays.
func (s *Server) serveSOCKS5(ctx context.Context, c net.Conn, r *bufio.Reader) {
	log := s.log().With("proto", "socks5", "client", c.RemoteAddr().String())
	noAuth, err := readSOCKS5Greeting(r)
	if err != nil {
		log.Info("proxy: bad SOCKS5 greeting", "err", err)
		return
	}
	if !noAuth {
		c.Write([]byte{socks5Version, socksMethodNoAcceptable})
		log.Info("proxy: SOCKS5 client wants authentication; this proxy offers only 'no authentication' (it listens on loopback)")
		return
	}
	if _, err := c.Write([]byte{socks5Version, socksMethodNoAuth}); err != nil {
		return
	}
	target, err := readSOCKS5Request(r)
	if err != nil {
		var se *socksError
		if errors.As(err, &se) && se.code != 0 {
			c.Write(socksReply(se.code, nil))
		}
		log.Info("proxy: bad SOCKS5 request", "err", err)
		return
	}
	up, err := s.dial(ctx, target)
	if err != nil {
		c.Write(socksReply(socksDialCode(err), nil))
		log.Info("proxy: SOCKS5 connect failed", "target", target, "err", err)
		return
	}
	if _, err := c.Write(socksReply(socksSucceeded, up.LocalAddr())); err != nil {
		up.Close()
		return
	}
	log.Debug("proxy: SOCKS5 connect", "target", target)
	s.relay(c, r, up)
}

// noEOF turns a bare EOF in the middle of a handshake into a clearer error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("client closed the connection mid-handshake")
	}
	return err
}
