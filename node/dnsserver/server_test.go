package dnsserver

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/meshinit/meshinit/node/nametable"
)

// Mesh names, short and fully qualified, any case, over UDP and TCP: the
// node's address, TTL 5, authoritative, the question's spelling kept.
func TestMeshNamesAnswered(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	for _, tc := range []struct {
		name string
		typ  dnsmessage.Type
		want string
	}{
		{"web.", dnsmessage.TypeA, "100.64.0.2"},
		{"web.mesh.internal.", dnsmessage.TypeA, "100.64.0.2"},
		{"WEB.Mesh.Internal.", dnsmessage.TypeA, "100.64.0.2"},
		{"web.", dnsmessage.TypeAAAA, "fd7a:115c:a1e0::2"},
		{"web.mesh.internal.", dnsmessage.TypeAAAA, "fd7a:115c:a1e0::2"},
		{"self.mesh.internal.", dnsmessage.TypeA, "100.64.0.1"},
	} {
		for _, overTCP := range []bool{false, true} {
			m := ask(t, s, newQuery(t, 7, tc.name, tc.typ, false), overTCP)
			if m.RCode != dnsmessage.RCodeSuccess || !m.Authoritative || m.ID != 7 || len(m.Answers) != 1 {
				t.Fatalf("%s %v (tcp %v): %+v", tc.name, tc.typ, overTCP, m.Header)
			}
			a := m.Answers[0]
			if a.Header.TTL != TTL || a.Header.Name.String() != tc.name || recordAddr(a) != tc.want {
				t.Errorf("%s %v: answer %s %v ttl %d, want %s ttl %d", tc.name, tc.typ, a.Header.Name, recordAddr(a), a.Header.TTL, tc.want, TTL)
			}
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Fatalf("%d mesh queries went upstream", n)
	}
}

func recordAddr(r dnsmessage.Resource) string {
	switch b := r.Body.(type) {
	case *dnsmessage.AResource:
		return netip.AddrFrom4(b.A).String()
	case *dnsmessage.AAAAResource:
		return netip.AddrFrom16(b.AAAA).String()
	case *dnsmessage.PTRResource:
		return b.PTR.String()
	}
	return "?"
}

// A name that exists without the asked type is NODATA with the SOA (its
// minimum 5 s), never NXDOMAIN.
func TestMissingTypeIsNoData(t *testing.T) {
	s := startServer(t, testNames())
	for _, q := range []struct {
		name string
		typ  dnsmessage.Type
	}{{"v4only.mesh.internal.", dnsmessage.TypeAAAA}, {"web.", dnsmessage.TypeMX}, {"mesh.internal.", dnsmessage.TypeA}} {
		m := ask(t, s, newQuery(t, 1, q.name, q.typ, false), false)
		if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 || !hasSOA(m) {
			t.Errorf("%s %v: rcode %v, %d answers, authority %v; want NODATA with the SOA", q.name, q.typ, m.RCode, len(m.Answers), m.Authorities)
		}
	}
	m := ask(t, s, newQuery(t, 1, "mesh.internal.", dnsmessage.TypeSOA, false), false)
	if len(m.Answers) != 1 || m.Answers[0].Header.Type != dnsmessage.TypeSOA {
		t.Errorf("SOA of the mesh domain: %+v", m.Answers)
	}
}

// On a node without IPv6 (SetIPv4Only) mesh names keep their A records,
// and AAAA (ANY too) carries no IPv6 address: NODATA with the SOA, never
// NXDOMAIN, and never asked upstream. Switching back restores AAAA.
func TestIPv4OnlyNodeAnswersNoAAAA(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	s.SetIPv4Only(true)
	for _, overTCP := range []bool{false, true} {
		m := ask(t, s, newQuery(t, 3, "web.mesh.internal.", dnsmessage.TypeA, false), overTCP)
		if len(m.Answers) != 1 || recordAddr(m.Answers[0]) != "100.64.0.2" {
			t.Fatalf("A web.mesh.internal (tcp %v): %+v", overTCP, m.Answers)
		}
		for _, name := range []string{"web.", "web.mesh.internal."} {
			m = ask(t, s, newQuery(t, 4, name, dnsmessage.TypeAAAA, false), overTCP)
			if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 || !hasSOA(m) {
				t.Errorf("AAAA %s (tcp %v): %v, %d answers; want NODATA with the SOA", name, overTCP, m.RCode, len(m.Answers))
			}
		}
		m = ask(t, s, newQuery(t, 5, "web.mesh.internal.", dnsmessage.TypeALL, false), overTCP)
		if len(m.Answers) != 1 || m.Answers[0].Header.Type != dnsmessage.TypeA {
			t.Errorf("ANY web.mesh.internal (tcp %v): %+v; want the A record only", overTCP, m.Answers)
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Fatalf("%d mesh queries went upstream", n)
	}
	s.SetIPv4Only(false)
	m := ask(t, s, newQuery(t, 6, "web.", dnsmessage.TypeAAAA, false), false)
	if len(m.Answers) != 1 || recordAddr(m.Answers[0]) != "fd7a:115c:a1e0::2" {
		t.Fatalf("AAAA web. after SetIPv4Only(false): %+v", m.Answers)
	}
}

func hasSOA(m *dnsmessage.Message) bool {
	for _, r := range m.Authorities {
		if soa, ok := r.Body.(*dnsmessage.SOAResource); ok && soa.MinTTL == TTL && r.Header.Name.String() == "mesh.internal." {
			return true
		}
	}
	return false
}

// NXDOMAIN only for names in the mesh domain that no node holds; those
// are never forwarded.
func TestUnknownMeshNameIsNXDOMAIN(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	for _, name := range []string{"ghost.mesh.internal.", "a.web.mesh.internal.", "GHOST.MESH.INTERNAL."} {
		for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypeTXT} {
			m := ask(t, s, newQuery(t, 1, name, typ, false), false)
			if m.RCode != dnsmessage.RCodeNameError || !m.Authoritative || !hasSOA(m) {
				t.Errorf("%s %v: %v, want NXDOMAIN with the SOA", name, typ, m.RCode)
			}
		}
	}
	if n := up.udp.Load(); n != 0 {
		t.Fatalf("%d mesh-domain queries went upstream", n)
	}
}

// Everything else goes to the original nameserver, single labels that are
// no node's included, and its answer comes back as it was.
func TestOtherNamesAreForwarded(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	m := ask(t, s, newQuery(t, 9, "outside.test.", dnsmessage.TypeA, false), false)
	if m.RCode != dnsmessage.RCodeSuccess || m.Authoritative || len(m.Answers) != 1 || recordAddr(m.Answers[0]) != "198.18.9.9" || m.Answers[0].Header.TTL != 300 {
		t.Fatalf("forwarded answer: %+v %+v", m.Header, m.Answers)
	}
	m = ask(t, s, newQuery(t, 10, "db.", dnsmessage.TypeA, false), false)
	if m.RCode != dnsmessage.RCodeNameError || m.Authoritative {
		t.Fatalf("single label that is no node: %+v", m.Header)
	}
	if n := up.udp.Load(); n != 2 {
		t.Fatalf("upstream saw %d queries, want 2", n)
	}
	// with EDNS the query reaches the upstream unchanged
	q := newQuery(t, 11, "outside.test.", dnsmessage.TypeA, true)
	ask(t, s, q, false)
	if got, _ := up.lastQuery.Load().([]byte); !slices.Equal(got, q) {
		t.Fatalf("the upstream got %x, want the query as sent %x", got, q)
	}
}

// A large answer: the upstream truncates over UDP, the truncated answer is
// passed on, the client retries over TCP, which is forwarded over TCP. Go's
// resolver is the client.
func TestTruncatedAnswerIsRetriedOverTCP(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := goResolver(s).LookupNetIP(ctx, "ip4", "big.test.")
	if err != nil || len(addrs) != 40 {
		t.Fatalf("big.test: %d addresses, %v; want 40", len(addrs), err)
	}
	if up.tcp.Load() == 0 {
		t.Fatal("the upstream got no TCP query")
	}
	m := ask(t, s, newQuery(t, 3, "big.test.", dnsmessage.TypeA, false), false)
	if !m.Truncated {
		t.Fatal("the truncated UDP answer lost its TC bit")
	}
}

// Upstreams are tried in order: a dead one and one that refuses are
// skipped for one that answers; with none answering the client gets
// SERVFAIL, and REFUSED from all is passed on.
func TestUpstreamsInOrder(t *testing.T) {
	dead := startUpstream(t, false)
	deadAddr := dead.addr
	dead.udpConn.Close()
	refusing := startUpstream(t, true)
	good := startUpstream(t, false)
	s, err := Listen("127.0.0.1:0", Config{Names: testNames(), Upstreams: []netip.AddrPort{deadAddr, refusing.addr, good.addr}, ForwardTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := ask(t, s, newQuery(t, 1, "outside.test.", dnsmessage.TypeA, false), false)
	if len(m.Answers) != 1 || refusing.udp.Load() != 1 {
		t.Fatalf("answer %+v; refusing upstream asked %d times", m.Answers, refusing.udp.Load())
	}
	none := startServer(t, testNames())
	if m := ask(t, none, newQuery(t, 2, "outside.test.", dnsmessage.TypeA, false), false); m.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("no upstream: %v, want SERVFAIL", m.RCode)
	}
	onlyRefusing := startServer(t, testNames(), refusing.addr)
	if m := ask(t, onlyRefusing, newQuery(t, 3, "outside.test.", dnsmessage.TypeA, false), false); m.RCode != dnsmessage.RCodeRefused {
		t.Fatalf("only a refusing upstream: %v, want its REFUSED", m.RCode)
	}
}

// The map is the source: a node that joins resolves on the next query, one
// that leaves stops resolving on the next query.
func TestMapChangesAreSeenOnTheNextQuery(t *testing.T) {
	names := testNames()
	s := startServer(t, names)
	q := newQuery(t, 1, "late.mesh.internal.", dnsmessage.TypeA, false)
	if m := ask(t, s, q, false); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("before the join: %v", m.RCode)
	}
	names.Upsert(nametable.Entry{ID: 9, Name: "late", IPv4: netip.MustParseAddr("100.64.0.9")})
	if m := ask(t, s, q, false); len(m.Answers) != 1 || recordAddr(m.Answers[0]) != "100.64.0.9" {
		t.Fatalf("after the join: %v %+v", m.RCode, m.Answers)
	}
	names.Remove(9)
	if m := ask(t, s, q, false); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("after the leave: %v", m.RCode)
	}
}

// PTR for mesh addresses from the map; other reverse names are forwarded.
func TestReverseLookups(t *testing.T) {
	up := startUpstream(t, false)
	s := startServer(t, testNames(), up.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for addr, want := range map[string]string{"100.64.0.2": "web.mesh.internal.", "fd7a:115c:a1e0::2": "web.mesh.internal."} {
		names, err := goResolver(s).LookupAddr(ctx, addr)
		if err != nil || len(names) != 1 || names[0] != want {
			t.Errorf("PTR %s: %v, %v; want %s", addr, names, err, want)
		}
	}
	m := ask(t, s, newQuery(t, 1, "99.0.64.100.in-addr.arpa.", dnsmessage.TypePTR, false), false)
	if m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("PTR of an unused mesh address: %v", m.RCode)
	}
	ask(t, s, newQuery(t, 2, "1.1.18.198.in-addr.arpa.", dnsmessage.TypePTR, false), false)
	if up.udp.Load() != 1 {
		t.Errorf("a non-mesh reverse name was not forwarded")
	}
}

// Malformed and unusual queries: FORMERR, NOTIMP, or silence for what is
// not a query; EDNS is echoed.
func TestQueryEdges(t *testing.T) {
	s := startServer(t, testNames())
	two := func() []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 5})
		b.StartQuestions()
		for _, n := range []string{"web.", "self."} {
			b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		}
		m, _ := b.Finish()
		return m
	}()
	if m := ask(t, s, two, false); m.RCode != dnsmessage.RCodeFormatError || m.ID != 5 {
		t.Errorf("two questions: %v", m.RCode)
	}
	notify := newQuery(t, 6, "web.", dnsmessage.TypeA, false)
	notify[2] |= 4 << 3 // opcode NOTIFY
	if m := ask(t, s, notify, false); m.RCode != dnsmessage.RCodeNotImplemented {
		t.Errorf("NOTIFY: %v", m.RCode)
	}
	if resp, fwd := answer(testNames(), []byte{1, 2, 3}, false); resp != nil || fwd {
		t.Errorf("3 bytes: %x %v; want dropped", resp, fwd)
	}
	m := ask(t, s, newQuery(t, 8, "web.", dnsmessage.TypeA, true), false)
	if len(m.Additionals) != 1 || m.Additionals[0].Header.Type != dnsmessage.TypeOPT {
		t.Errorf("EDNS query: additionals %+v, want an OPT", m.Additionals)
	}
}

func TestListenErrorNamesTheAddress(t *testing.T) {
	s := startServer(t, testNames())
	_, err := Listen(s.Addr().String(), Config{Names: testNames()})
	if err == nil || !strings.Contains(err.Error(), s.Addr().String()) {
		t.Fatalf("second Listen on %s: %v", s.Addr(), err)
	}
}
