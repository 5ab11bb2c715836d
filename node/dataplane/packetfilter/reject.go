package packetfilter

import (
	"encoding/binary"
	"net/netip"
)

// MaxRejectSize is the largest refusal the filter builds.
const MaxRejectSize = 40 + 8 + 40 + 64

// quoteLen is how much of a refused packet an ICMP error quotes after its
// IP header (RFC 792 asks for 8 bytes; more helps nobody here).
const quoteLen = 64

// buildReset writes into buf a TCP reset that answers the segment h (of
// pkt) as a closed port would, and returns its length.
func buildReset(buf []byte, h *header) int {
	n := ipHeader(buf, h.v6, protoTCP, h.dst, h.src, 20)
	t := buf[n : n+20]
	clear(t)
	binary.BigEndian.PutUint16(t[0:2], h.dport)
	binary.BigEndian.PutUint16(t[2:4], h.sport)
	t[12] = 5 << 4
	if h.tcpFlags&tcpACK != 0 {
		// RFC 9293: <SEQ=SEG.ACK><CTL=RST>
		binary.BigEndian.PutUint32(t[4:8], h.tcpAck)
		t[13] = tcpRST
	} else {
		// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
		seglen := uint32(h.payload)
		if h.tcpFlags&tcpSYN != 0 {
			seglen++
		}
		if h.tcpFlags&tcpFIN != 0 {
			seglen++
		}
		binary.BigEndian.PutUint32(t[8:12], h.tcpSeq+seglen)
		t[13] = tcpRST | tcpACK
	}
	binary.BigEndian.PutUint16(t[16:18], transportChecksum(h.v6, protoTCP, h.dst, h.src, t))
	return n + 20
}

// buildUnreachable writes into buf an ICMP destination unreachable about
// pkt (parsed as h), and returns its length: "port unreachable" for UDP,
// which every stack (gVisor's too) turns into "connection refused" on the
// sender's socket, and "administratively prohibited" for anything else.
func buildUnreachable(buf []byte, pkt []byte, h *header) int {
	quote := pkt[:min(len(pkt), h.ipLen+quoteLen)]
	proto := uint8(protoICMP)
	if h.v6 {
		proto = protoICMPv6
	}
	n := ipHeader(buf, h.v6, proto, h.dst, h.src, 8+len(quote))
	m := buf[n : n+8+len(quote)]
	clear(m[:8])
	switch {
	case h.v6 && h.proto == protoUDP:
		m[0], m[1] = icmp6Unreachable, 4 // port unreachable
	case h.v6:
		m[0], m[1] = icmp6Unreachable, 1 // communication administratively prohibited
	case h.proto == protoUDP:
		m[0], m[1] = icmp4Unreachable, 3 // port unreachable
	default:
		m[0], m[1] = icmp4Unreachable, 13 // communication administratively prohibited
	}
	copy(m[8:], quote)
	var sum uint16
	if h.v6 {
		sum = transportChecksum(true, protoICMPv6, h.dst, h.src, m)
	} else {
		sum = ^fold(addBytes(0, m))
	}
	binary.BigEndian.PutUint16(m[2:4], sum)
	return n + len(m)
}

// ipHeader writes an IP header from src to dst for a payload of plen
// bytes and returns its length.
func ipHeader(buf []byte, v6 bool, proto uint8, src, dst netip.Addr, plen int) int {
	if v6 {
		h := buf[:40]
		clear(h)
		h[0] = 6 << 4
		binary.BigEndian.PutUint16(h[4:6], uint16(plen))
		h[6], h[7] = proto, 64
		s, d := src.As16(), dst.As16()
		copy(h[8:24], s[:])
		copy(h[24:40], d[:])
		return 40
	}
	h := buf[:20]
	clear(h)
	h[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(h[2:4], uint16(20+plen))
	h[6] = 0x40 // don't fragment
	h[8], h[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	binary.BigEndian.PutUint16(h[10:12], ^fold(addBytes(0, h)))
	return 20
}

// transportChecksum is the TCP/UDP/ICMPv6 checksum of seg (whose checksum
// field must be zero) with its pseudo-header.
func transportChecksum(v6 bool, proto uint8, src, dst netip.Addr, seg []byte) uint16 {
	var sum uint32
	if v6 {
		s, d := src.As16(), dst.As16()
		sum = addBytes(addBytes(sum, s[:]), d[:])
	} else {
		s, d := src.As4(), dst.As4()
		sum = addBytes(addBytes(sum, s[:]), d[:])
	}
	sum += uint32(proto) + uint32(len(seg))
	return ^fold(addBytes(sum, seg))
}

func addBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
