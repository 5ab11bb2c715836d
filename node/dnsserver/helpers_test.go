package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/meshinit/meshinit/node/nametable"
)

// testNames is a map with web (both families), v4only, and the domain
// mesh.internal over 100.64.0.0/10 and fd7a:115c:a1e0::/48.
func testNames() *nametable.Table {
	var t nametable.Table
	t.Reset("mesh.internal", []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("fd7a:115c:a1e0::/48")},
		[]nametable.Entry{
			{ID: 1, Name: "self", IPv4: netip.MustParseAddr("100.64.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::1")},
			{ID: 2, Name: "web", IPv4: netip.MustParseAddr("100.64.0.2"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::2")},
			{ID: 3, Name: "v4only", IPv4: netip.MustParseAddr("100.64.0.3")},
		})
	return &t
}

// upstream is a test nameserver on loopback, UDP and TCP on one port, the
// stand-in for the container's original one in unit tests (the names
// integration suite uses dnsmasq). It answers:
//
//	outside.test  A 198.18.9.9
//	big.test      40 A records (too big for 512 bytes: truncated over UDP)
//	fail.test     SERVFAIL
//	anything else NXDOMAIN
type upstream struct {
	addr      netip.AddrPort
	udp, tcp  atomic.Int32 // queries received per transport
	refuseAll bool
	lastQuery atomic.Value // []byte
	udpConn   *net.UDPConn
	tcpLn     *net.TCPListener
	wg        sync.WaitGroup
}

func startUpstream(t *testing.T, refuseAll bool) *upstream {
	t.Helper()
	udp, tcp, err := listenBoth(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: udp.LocalAddr().(*net.UDPAddr).AddrPort(), refuseAll: refuseAll, udpConn: udp, tcpLn: tcp}
	u.wg.Add(2)
	go func() {
		defer u.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			u.udp.Add(1)
			if resp := u.answer(buf[:n], false); resp != nil {
				udp.WriteToUDPAddrPort(resp, from)
			}
		}
	}()
	go func() {
		defer u.wg.Done()
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			msg, err := readFrame(c)
			if err == nil {
				u.tcp.Add(1)
				c.Write(frame(u.answer(msg, true)))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
		u.wg.Wait()
	})
	return u
}

func (u *upstream) answer(msg []byte, overTCP bool) []byte {
	u.lastQuery.Store(append([]byte(nil), msg...))
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	var addrs []netip.Addr
	switch name := q.Name.String(); {
	case u.refuseAll:
		rh.RCode = dnsmessage.RCodeRefused
	case name == "outside.test." && q.Type == dnsmessage.TypeA:
		addrs = []netip.Addr{netip.MustParseAddr("198.18.9.9")}
	case name == "big.test." && q.Type == dnsmessage.TypeA:
		for i := range 40 {
			addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, 10, byte(i + 1)}))
		}
		if !overTCP {
			rh.Truncated = true
			addrs = nil
		}
	case name == "fail.test.":
		rh.RCode = dnsmessage.RCodeServerFailure
	case name == "outside.test." || name == "big.test.":
	default:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, a := range addrs {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 300},
			dnsmessage.AResource{A: a.As4()})
	}
	out, _ := b.Finish()
	return out
}

// startServer runs the resolver on 127.0.0.1 with names and upstreams.
func startServer(t *testing.T, names *nametable.Table, ups ...netip.AddrPort) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", Config{Names: names, Upstreams: ups, ForwardTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newQuery builds a query for name and type, with EDNS if edns.
func newQuery(t testing.TB, id uint16, name string, typ dnsmessage.Type, edns bool) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if edns {
		b.StartAdditionals()
		var h dnsmessage.ResourceHeader
		h.SetEDNS0(1232, dnsmessage.RCodeSuccess, false)
		b.OPTResource(h, dnsmessage.OPTResource{})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// ask sends msg to the server over UDP (or TCP) and parses the answer.
func ask(t *testing.T, s *Server, msg []byte, overTCP bool) *dnsmessage.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp []byte
	var err error
	if overTCP {
		resp, err = exchangeTCP(ctx, s.Addr(), msg)
	} else {
		resp, err = exchangeUDP(ctx, s.Addr(), msg)
	}
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("unpacking the answer: %v", err)
	}
	return &m
}

// goResolver is Go's own DNS client (a second, independent one) pointed at
// the server.
func goResolver(s *Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr().String())
	}}
}
