package packetfilter

import (
	"encoding/binary"
	"net/netip"
)

var (
	me4   = netip.MustParseAddr("100.64.0.1")
	me6   = netip.MustParseAddr("fd00::6440:1")
	ci4   = netip.MustParseAddr("100.64.0.2")
	ci6   = netip.MustParseAddr("fd00::6440:2")
	web4  = netip.MustParseAddr("100.64.0.3")
	other = netip.MustParseAddr("198.18.0.99")
)

// tcpPacket builds an IPv4 or IPv6 TCP segment with a valid checksum.
func tcpPacket(src, dst netip.Addr, sport, dport uint16, flags uint8, payload int) []byte {
	v6 := src.Is6()
	buf := make([]byte, 40+20+payload)
	n := ipHeader(buf, v6, protoTCP, src, dst, 20+payload)
	t := buf[n : n+20+payload]
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	binary.BigEndian.PutUint32(t[4:8], 1000)
	binary.BigEndian.PutUint32(t[8:12], 2000)
	t[12], t[13] = 5<<4, flags
	binary.BigEndian.PutUint16(t[16:18], transportChecksum(v6, protoTCP, src, dst, t))
	return buf[:n+len(t)]
}

func udpPacket(src, dst netip.Addr, sport, dport uint16) []byte {
	v6 := src.Is6()
	buf := make([]byte, 40+8+4)
	n := ipHeader(buf, v6, protoUDP, src, dst, 12)
	u := buf[n : n+12]
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], 12)
	copy(u[8:], "ping")
	binary.BigEndian.PutUint16(u[6:8], transportChecksum(v6, protoUDP, src, dst, u))
	return buf[:n+12]
}

func echoPacket(src, dst netip.Addr, reply bool, id uint16) []byte {
	v6 := src.Is6()
	proto := uint8(protoICMP)
	typ := uint8(icmp4Echo)
	if reply {
		typ = icmp4EchoReply
	}
	if v6 {
		proto, typ = protoICMPv6, icmp6Echo
		if reply {
			typ = icmp6EchoReply
		}
	}
	buf := make([]byte, 40+8)
	n := ipHeader(buf, v6, proto, src, dst, 8)
	m := buf[n : n+8]
	m[0] = typ
	binary.BigEndian.PutUint16(m[4:6], id)
	if v6 {
		binary.BigEndian.PutUint16(m[2:4], transportChecksum(true, proto, src, dst, m))
	} else {
		binary.BigEndian.PutUint16(m[2:4], ^fold(addBytes(0, m)))
	}
	return buf[:n+8]
}

// validSum reports whether b's ones' complement sum (with start added) is
// all ones: a checksummed region checks out.
func validSum(start uint32, b []byte) bool { return fold(addBytes(start, b)) == 0xffff }

func pseudo(v6 bool, proto uint8, src, dst netip.Addr, n int) uint32 {
	var sum uint32
	if v6 {
		s, d := src.As16(), dst.As16()
		sum = addBytes(addBytes(0, s[:]), d[:])
	} else {
		s, d := src.As4(), dst.As4()
		sum = addBytes(addBytes(0, s[:]), d[:])
	}
	return sum + uint32(proto) + uint32(n)
}
