package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DefaultForwardTimeout bounds one try at one upstream nameserver.
const DefaultForwardTimeout = 2 * time.Second

// forwarder sends queries to the upstream nameservers.
type forwarder struct {
	upstreams []netip.AddrPort
	timeout   time.Duration
}

var errNoUpstream = errors.New("no upstream nameserver (the original resolv.conf listed none that is usable)")

// exchange sends query to each upstream in turn until one gives an answer
// that is not SERVFAIL, REFUSED or NOTIMP; if all of them give one of
// those, the last such answer is returned. overTCP selects the transport.
func (f *forwarder) exchange(ctx context.Context, query []byte, overTCP bool) ([]byte, error) {
	var lastErr error = errNoUpstream
	var fallback []byte
	for _, up := range f.upstreams {
		tctx, cancel := context.WithTimeout(ctx, f.timeout)
		var resp []byte
		var err error
		if overTCP {
			resp, err = exchangeTCP(tctx, up, query)
		} else {
			resp, err = exchangeUDP(tctx, up, query)
		}
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", up, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if retryElsewhere(resp) {
			fallback = resp
			continue
		}
		return resp, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, lastErr
}

// retryElsewhere reports an answer that another nameserver may improve on.
func retryElsewhere(resp []byte) bool {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return true
	}
	switch h.RCode {
	case dnsmessage.RCodeServerFailure, dnsmessage.RCodeRefused, dnsmessage.RCodeNotImplemented:
		return true
	}
	return false
}

// exchangeUDP sends query from a fresh connected socket (a random source
// port; the kernel drops datagrams from anyone but up) and waits for the
// answer that matches it, ignoring others.
func exchangeUDP(ctx context.Context, up netip.AddrPort, query []byte) ([]byte, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(up))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	bp := udpBuffers.Get().(*[]byte)
	defer udpBuffers.Put(bp)
	buf := *bp
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		if matches(query, buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// udpBuffers hold one datagram of any size, for reading answers.
var udpBuffers = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// exchangeTCP sends query over a new TCP connection (RFC 7766 framing).
func exchangeTCP(ctx context.Context, up netip.AddrPort, query []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(frame(query)); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp, err := readFrame(c)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	if !matches(query, resp) {
		return nil, errors.New("the answer does not match the query")
	}
	return resp, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// frame prefixes msg with its length, as DNS over TCP does.
func frame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg))), msg...)
}

// readFrame reads one length-prefixed message.
func readFrame(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// matches reports whether resp answers query: same ID, a response, and the
// same question (or none, as some servers send with FORMERR).
func matches(query, resp []byte) bool {
	var qp, rp dnsmessage.Parser
	qh, err := qp.Start(query)
	if err != nil {
		return false
	}
	rh, err := rp.Start(resp)
	if err != nil || rh.ID != qh.ID || !rh.Response {
		return false
	}
	rq, err := rp.Question()
	if errors.Is(err, dnsmessage.ErrSectionDone) {
		return true
	}
	qq, qerr := qp.Question()
	if err != nil || qerr != nil {
		return false
	}
	return rq.Type == qq.Type && rq.Class == qq.Class && equalFold(rq.Name.String(), qq.Name.String())
}

// equalFold compares names ASCII-case-insensitively (servers may change
// the case of a 0x20-randomised question).
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
