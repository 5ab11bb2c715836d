package packetfilter

import (
	"net/netip"
	"testing"

	"github.com/meshinit/meshinit/policy"
)

// FuzzInbound: any bytes from a peer get a verdict, never a panic; a
// refusal's answer parses and goes back to the sender.
func FuzzInbound(f *testing.F) {
	f.Add(tcpPacket(ci4, me4, 1, 5432, tcpSYN, 0))
	f.Add(tcpPacket(ci6, me6, 1, 22, tcpSYN|tcpFIN, 3))
	f.Add(udpPacket(ci4, me4, 1, 54))
	f.Add(echoPacket(ci6, me6, false, 1))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 44, 64})
	// an IPv4 ICMP error quoting a UDP datagram
	h, _ := parse(udpPacket(me4, ci4, 50000, 53))
	buf := make([]byte, MaxRejectSize)
	n := buildUnreachable(buf, udpPacket(me4, ci4, 50000, 53), &h)
	f.Add(buf[:n])
	p, _ := policy.Load([]byte(dbPolicy))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		flt := New([]netip.Addr{me4, me6})
		flt.SetPeer([]netip.Addr{ci4, ci6}, []string{"tag:ci"})
		flt.SetProtectedPorts([]uint16{22})
		flt.Outbound(pkt, make([]byte, MaxRejectSize), now)
		flt.SetRules("v", p.InboundRules([]string{"tag:db"}))
		reply := make([]byte, MaxRejectSize)
		v, n := flt.Inbound(pkt, reply, now)
		if v == Reject {
			in, _ := parse(pkt)
			out, ok := parse(reply[:n])
			if !ok || out.dst != in.src || out.src != in.dst {
				t.Fatalf("reject %x for %x does not go back to the sender", reply[:n], pkt)
			}
		}
	})
}
