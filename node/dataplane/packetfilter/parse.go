package packetfilter

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the filter knows.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// header is what the filter reads from a packet.
type header struct {
	v6       bool
	proto    uint8
	src, dst netip.Addr
	ipLen    int // IP header length, extension headers included
	// sport and dport are the TCP/UDP ports; for ICMP echo both hold the
	// identifier (so a request and its reply have the same flow key).
	sport, dport uint16
	tcpFlags     uint8
	tcpSeq       uint32
	tcpAck       uint32
	payload      int // bytes after the TCP/UDP header
	icmpType     uint8
	fragment     bool // a non-first fragment: no transport header
}

// maxExtHeaders bounds the IPv6 extension header chain we walk.
const maxExtHeaders = 8

// parse reads the IP and transport headers of pkt. ok is false for a
// packet too short or inconsistent to judge.
func parse(pkt []byte) (h header, ok bool) {
	if len(pkt) < 1 {
		return h, false
	}
	var l4 int
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return h, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return h, false
		}
		pkt = pkt[:total]
		h.proto = pkt[9]
		h.src = netip.AddrFrom4([4]byte(pkt[12:16]))
		h.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		frag := binary.BigEndian.Uint16(pkt[6:8])
		h.fragment = frag&0x1fff != 0
		l4 = ihl
	case 6:
		if len(pkt) < 40 {
			return h, false
		}
		total := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if total > len(pkt) {
			return h, false
		}
		pkt = pkt[:total]
		h.v6 = true
		h.src = netip.AddrFrom16([16]byte(pkt[8:24]))
		h.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		next, off := pkt[6], 40
		for i := 0; ; i++ {
			if i == maxExtHeaders {
				return h, false
			}
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > len(pkt) {
					return h, false
				}
				next, off = pkt[off], off+8+int(pkt[off+1])*8
				continue
			case 44: // fragment
				if off+8 > len(pkt) {
					return h, false
				}
				h.fragment = binary.BigEndian.Uint16(pkt[off+2:off+4])&0xfff8 != 0
				next, off = pkt[off], off+8
				continue
			}
			break
		}
		if off > len(pkt) {
			return h, false
		}
		h.proto, l4 = next, off
	default:
		return h, false
	}
	h.ipLen = l4
	if h.fragment {
		return h, true
	}
	t := pkt[l4:]
	switch h.proto {
	case protoTCP:
		if len(t) < 20 {
			return h, false
		}
		off := int(t[12]>>4) * 4
		if off < 20 || off > len(t) {
			return h, false
		}
		h.sport, h.dport = binary.BigEndian.Uint16(t[0:2]), binary.BigEndian.Uint16(t[2:4])
		h.tcpSeq, h.tcpAck = binary.BigEndian.Uint32(t[4:8]), binary.BigEndian.Uint32(t[8:12])
		h.tcpFlags = t[13]
		h.payload = len(t) - off
	case protoUDP:
		if len(t) < 8 {
			return h, false
		}
		h.sport, h.dport = binary.BigEndian.Uint16(t[0:2]), binary.BigEndian.Uint16(t[2:4])
		h.payload = len(t) - 8
	case protoICMP, protoICMPv6:
		if len(t) < 8 {
			return h, false
		}
		h.icmpType = t[0]
		if isEcho(h.proto, h.icmpType) {
			id := binary.BigEndian.Uint16(t[4:6])
			h.sport, h.dport = id, id
		}
	}
	return h, true
}

// ICMP types.
const (
	icmp4EchoReply   = 0
	icmp4Unreachable = 3
	icmp4Echo        = 8
	icmp4TimeExceed  = 11
	icmp4ParamProb   = 12
	icmp6Unreachable = 1
	icmp6TooBig      = 2
	icmp6TimeExceed  = 3
	icmp6ParamProb   = 4
	icmp6Echo        = 128
	icmp6EchoReply   = 129
)

func isEcho(proto, typ uint8) bool {
	if proto == protoICMP {
		return typ == icmp4Echo || typ == icmp4EchoReply
	}
	return typ == icmp6Echo || typ == icmp6EchoReply
}

func isEchoRequest(h *header) bool {
	return h.proto == protoICMP && h.icmpType == icmp4Echo || h.proto == protoICMPv6 && h.icmpType == icmp6Echo
}

// isICMPError reports whether h is an ICMP error, which carries the start
// of the packet it is about.
func isICMPError(h *header) bool {
	switch h.proto {
	case protoICMP:
		return h.icmpType == icmp4Unreachable || h.icmpType == icmp4TimeExceed || h.icmpType == icmp4ParamProb
	case protoICMPv6:
		return h.icmpType >= icmp6Unreachable && h.icmpType <= icmp6ParamProb
	}
	return false
}

// embedded parses the packet an ICMP error quotes (only its first bytes
// are there: lengths are not checked against the IP header's).
func embedded(pkt []byte, h *header) (header, bool) {
	inner := pkt[h.ipLen+8:]
	var e header
	switch {
	case !h.v6 && len(inner) >= 28 && inner[0]>>4 == 4:
		ihl := int(inner[0]&0x0f) * 4
		if ihl < 20 || len(inner) < ihl+8 {
			return e, false
		}
		e.proto = inner[9]
		e.src = netip.AddrFrom4([4]byte(inner[12:16]))
		e.dst = netip.AddrFrom4([4]byte(inner[16:20]))
		inner = inner[ihl:]
	case h.v6 && len(inner) >= 48 && inner[0]>>4 == 6:
		e.v6 = true
		e.proto = inner[6]
		e.src = netip.AddrFrom16([16]byte(inner[8:24]))
		e.dst = netip.AddrFrom16([16]byte(inner[24:40]))
		inner = inner[40:]
	default:
		return e, false
	}
	switch e.proto {
	case protoTCP, protoUDP:
		e.sport, e.dport = binary.BigEndian.Uint16(inner[0:2]), binary.BigEndian.Uint16(inner[2:4])
	case protoICMP, protoICMPv6:
		if !isEcho(e.proto, inner[0]) {
			return e, false
		}
		id := binary.BigEndian.Uint16(inner[4:6])
		e.sport, e.dport = id, id
	default:
		return e, false
	}
	return e, true
}
