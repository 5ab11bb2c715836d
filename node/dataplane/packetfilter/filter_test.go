package packetfilter

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/meshinit/meshinit/policy"
)

const now = 1_000_000

func newTestFilter(t *testing.T, doc string, myTags []string) *Filter {
	t.Helper()
	f := New([]netip.Addr{me4, me6})
	f.SetPeer([]netip.Addr{ci4, ci6}, []string{"tag:ci"})
	f.SetPeer([]netip.Addr{web4}, nil) // untagged
	if doc != "" {
		p, err := policy.Load([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		f.SetRules("v1", p.InboundRules(myTags))
	}
	return f
}

func verdict(f *Filter, pkt []byte) Verdict {
	v, _ := f.Inbound(pkt, make([]byte, MaxRejectSize), now)
	return v
}

const dbPolicy = `{"grants": [
	{"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432", "udp:53", "icmp"]},
]}`

func TestNoPolicyPassesAllButProtected(t *testing.T) {
	f := newTestFilter(t, "", nil)
	f.SetProtectedPorts([]uint16{1055})
	for _, pkt := range [][]byte{
		tcpPacket(ci4, me4, 40000, 22, tcpSYN, 0),
		tcpPacket(web4, me4, 40000, 5432, tcpSYN, 0),
		udpPacket(ci6, me6, 40000, 9999),
		echoPacket(web4, me4, false, 7),
	} {
		if v := verdict(f, pkt); v != Pass {
			t.Errorf("no policy: %v for %x", v, pkt[:20])
		}
	}
	if v := verdict(f, tcpPacket(ci4, me4, 40000, 1055, tcpSYN, 0)); v != Reject {
		t.Errorf("protected port: %v, want Reject", v)
	}
	if v := verdict(f, tcpPacket(ci4, other, 40000, 80, tcpSYN, 0)); v != Drop {
		t.Errorf("to a non-local address: %v, want Drop", v)
	}
	st := f.Stats()
	if st.Enforcing || st.Drops["own_listener"] != 1 || st.Drops["not_local"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestPolicyInbound(t *testing.T) {
	f := newTestFilter(t, dbPolicy, []string{"tag:db"})
	cases := []struct {
		name string
		pkt  []byte
		want Verdict
	}{
		{"allowed SYN v4", tcpPacket(ci4, me4, 40000, 5432, tcpSYN, 0), Pass},
		{"allowed SYN v6", tcpPacket(ci6, me6, 40000, 5432, tcpSYN, 0), Pass},
		{"allowed data", tcpPacket(ci4, me4, 40000, 5432, tcpACK, 100), Pass},
		{"denied port", tcpPacket(ci4, me4, 40000, 22, tcpSYN, 0), Reject},
		{"untagged source", tcpPacket(web4, me4, 40000, 5432, tcpSYN, 0), Reject},
		{"unknown source", tcpPacket(netip.MustParseAddr("100.64.0.77"), me4, 40000, 5432, tcpSYN, 0), Reject},
		{"denied RST is not answered", tcpPacket(ci4, me4, 40000, 22, tcpRST, 0), Drop},
		{"allowed udp", udpPacket(ci4, me4, 40000, 53), Pass},
		{"denied udp", udpPacket(ci4, me4, 40000, 54), Reject},
		{"allowed ping", echoPacket(ci4, me4, false, 1), Pass},
		{"allowed ping v6", echoPacket(ci6, me6, false, 1), Pass},
		{"denied ping", echoPacket(web4, me4, false, 1), Reject},
		{"stray echo reply", echoPacket(web4, me4, true, 1), Drop},
	}
	for _, c := range cases {
		if got := verdict(f, c.pkt); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if st := f.Stats(); !st.Enforcing || st.PolicyVersion != "v1" || st.Drops["policy"] != 6 || st.Drops["unknown_peer"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Replies to flows this node opened pass, whatever the policy says about
// the other direction; unrelated packets from the same peer do not.
func TestRepliesToOutboundFlowsPass(t *testing.T) {
	f := newTestFilter(t, `{"grants": []}`, nil) // deny every inbound flow
	outbound(f, tcpPacket(me4, web4, 50000, 80, tcpSYN, 0), now)
	outbound(f, udpPacket(me6, ci6, 50001, 53), now)
	outbound(f, echoPacket(me4, ci4, false, 9), now)
	pass := [][]byte{
		tcpPacket(web4, me4, 80, 50000, tcpSYN|tcpACK, 0),
		tcpPacket(web4, me4, 80, 50000, tcpACK, 1000),
		udpPacket(ci6, me6, 53, 50001),
		echoPacket(ci4, me4, true, 9),
	}
	for _, p := range pass {
		if v := verdict(f, p); v != Pass {
			t.Errorf("reply %x: %v", p[:24], v)
		}
	}
	deny := [][]byte{
		tcpPacket(web4, me4, 80, 50001, tcpACK, 0),   // other port
		tcpPacket(web4, me4, 8080, 50000, tcpACK, 0), // other source port
		tcpPacket(ci4, me4, 80, 50000, tcpACK, 0),    // other peer
		echoPacket(ci4, me4, true, 10),
	}
	for _, p := range deny {
		if v := verdict(f, p); v == Pass {
			t.Errorf("unrelated %x passed", p[:24])
		}
	}
	// An outbound ACK (no SYN) opens nothing.
	outbound(f, tcpPacket(me4, web4, 50002, 80, tcpACK, 0), now)
	if v := verdict(f, tcpPacket(web4, me4, 80, 50002, tcpACK, 0)); v == Pass {
		t.Error("a flow was tracked from a bare ACK")
	}
	// Expired flows stop passing.
	if v, _ := f.Inbound(udpPacket(ci6, me6, 53, 50001), make([]byte, MaxRejectSize), now+udpIdle+1); v == Pass {
		t.Error("an idle UDP flow still passes")
	}
}

// An ICMP error about a packet this node sent passes (path MTU discovery
// needs it); one about anything else does not.
func TestICMPErrorsAboutTrackedFlows(t *testing.T) {
	f := newTestFilter(t, `{"grants": []}`, nil)
	sent := udpPacket(me4, ci4, 50000, 53)
	outbound(f, sent, now)
	errPkt := func(quoted []byte) []byte {
		h, _ := parse(quoted)
		buf := make([]byte, MaxRejectSize)
		// buildUnreachable answers quoted as its receiver would: from its
		// destination to its source.
		n := buildUnreachable(buf, quoted, &h)
		return buf[:n]
	}
	if v := verdict(f, errPkt(sent)); v != Pass {
		t.Errorf("ICMP error about a tracked flow: %v", v)
	}
	if v := verdict(f, errPkt(udpPacket(me4, ci4, 50009, 53))); v != Drop {
		t.Errorf("ICMP error about an unknown flow: %v", v)
	}
}

func TestRejectsAreWellFormed(t *testing.T) {
	f := newTestFilter(t, dbPolicy, []string{"tag:db"})
	for _, syn := range [][]byte{tcpPacket(ci4, me4, 40000, 22, tcpSYN, 0), tcpPacket(ci6, me6, 40000, 22, tcpSYN, 0)} {
		reply := make([]byte, MaxRejectSize)
		v, n := f.Inbound(syn, reply, now)
		if v != Reject {
			t.Fatalf("verdict %v", v)
		}
		h, ok := parse(reply[:n])
		if !ok || h.proto != protoTCP || h.src != netip.MustParseAddr(map[bool]string{false: "100.64.0.1", true: "fd00::6440:1"}[h.v6]) ||
			h.sport != 22 || h.dport != 40000 || h.tcpFlags != tcpRST|tcpACK || h.tcpAck != 1001 {
			t.Fatalf("reset %+v", h)
		}
		if !h.v6 && !validSum(0, reply[:20]) {
			t.Error("bad IPv4 header checksum")
		}
		if !validSum(pseudo(h.v6, protoTCP, h.src, h.dst, 20), reply[h.ipLen:n]) {
			t.Error("bad TCP checksum")
		}
	}
	for _, dg := range [][]byte{udpPacket(ci4, me4, 40000, 54), udpPacket(ci6, me6, 40000, 54)} {
		reply := make([]byte, MaxRejectSize)
		v, n := f.Inbound(dg, reply, now)
		h, ok := parse(reply[:n])
		if v != Reject || !ok || !isICMPError(&h) {
			t.Fatalf("verdict %v, %+v", v, h)
		}
		if h.v6 {
			if !validSum(pseudo(true, protoICMPv6, h.src, h.dst, n-40), reply[40:n]) {
				t.Error("bad ICMPv6 checksum")
			}
		} else if !validSum(0, reply[20:n]) || binary.BigEndian.Uint16(reply[2:4]) != uint16(n) {
			t.Error("bad ICMP checksum or length")
		}
		if e, ok := embedded(reply[:n], &h); !ok || e.sport != 40000 || e.dport != 54 {
			t.Errorf("quoted packet %+v", e)
		}
	}
}

func TestRejectsAreRateLimited(t *testing.T) {
	f := newTestFilter(t, dbPolicy, []string{"tag:db"})
	rejects := 0
	for i := 0; i < 10*rejectBurst; i++ {
		if verdict(f, tcpPacket(ci4, me4, 40000, 22, tcpSYN, 0)) == Reject {
			rejects++
		}
	}
	if rejects < rejectBurst || rejects > rejectBurst+rejectRate {
		t.Errorf("%d rejects for %d refused packets", rejects, 10*rejectBurst)
	}
}

func TestPolicyChangeAppliesToEstablishedInboundFlows(t *testing.T) {
	f := newTestFilter(t, dbPolicy, []string{"tag:db"})
	data := tcpPacket(ci4, me4, 40000, 5432, tcpACK, 100)
	if verdict(f, data) != Pass {
		t.Fatal("allowed flow refused")
	}
	f.SetRules("v2", []policy.Rule{})
	if v := verdict(f, data); v != Reject {
		t.Errorf("after the grant was removed: %v", v)
	}
	f.SetRules("", nil)
	if verdict(f, data) != Pass {
		t.Error("without a policy the flow should pass again")
	}
}

func TestPeerTagsFollowTheMap(t *testing.T) {
	f := newTestFilter(t, dbPolicy, []string{"tag:db"})
	syn := tcpPacket(web4, me4, 40000, 5432, tcpSYN, 0)
	if verdict(f, syn) != Reject {
		t.Fatal("untagged peer allowed")
	}
	f.SetPeer([]netip.Addr{web4}, []string{"tag:ci"})
	if verdict(f, syn) != Pass {
		t.Error("peer now tagged ci refused")
	}
	f.RemovePeer([]netip.Addr{web4})
	if verdict(f, syn) != Reject {
		t.Error("removed peer allowed")
	}
}

func TestConntrackIsBounded(t *testing.T) {
	c := newConntrack(100)
	for i := 0; i < 1000; i++ {
		c.track(flowKey{protoUDP, me4, ci4, uint16(i), 53}, now)
	}
	if n := c.len(); n > 100 {
		t.Errorf("%d flows in a table of 100", n)
	}
	if !c.reply(flowKey{protoUDP, me4, ci4, 999, 53}, now) {
		t.Error("the newest flow was evicted")
	}
}

func BenchmarkInboundAllowed(b *testing.B) {
	f := New([]netip.Addr{me4})
	f.SetPeer([]netip.Addr{ci4}, []string{"tag:ci"})
	p, _ := policy.Load([]byte(dbPolicy))
	f.SetRules("v", p.InboundRules([]string{"tag:db"}))
	pkt := tcpPacket(ci4, me4, 40000, 5432, tcpACK, 1200)
	reply := make([]byte, MaxRejectSize)
	b.ReportAllocs()
	for b.Loop() {
		f.Inbound(pkt, reply, now)
	}
}

func outbound(f *Filter, pkt []byte, now int64) Verdict {
	v, _ := f.Outbound(pkt, make([]byte, MaxRejectSize), now)
	return v
}

// A new flow to an address no peer holds is refused on the way out, with
// an answer from that address; flows to known peers and to itself pass.
func TestOutboundToUnknownAddressIsRefused(t *testing.T) {
	f := newTestFilter(t, "", nil)
	unknown := netip.MustParseAddr("100.64.0.99")
	reply := make([]byte, MaxRejectSize)
	v, n := f.Outbound(tcpPacket(me4, unknown, 50000, 80, tcpSYN, 0), reply, now)
	if v != Reject {
		t.Fatalf("SYN to an unknown address: %v", v)
	}
	h, ok := parse(reply[:n])
	if !ok || h.src != unknown || h.dst != me4 || h.tcpFlags&tcpRST == 0 || h.dport != 50000 {
		t.Errorf("answer %+v", h)
	}
	if v := outbound(f, udpPacket(me4, unknown, 50000, 53), now); v != Reject {
		t.Errorf("UDP to an unknown address: %v", v)
	}
	for _, p := range [][]byte{tcpPacket(me4, ci4, 50000, 80, tcpSYN, 0), tcpPacket(me4, me4, 50000, 80, tcpSYN, 0), tcpPacket(me4, unknown, 50000, 80, tcpACK, 10)} {
		if v := outbound(f, p, now); v != Pass {
			t.Errorf("%x: %v", p[:20], v)
		}
	}
}
