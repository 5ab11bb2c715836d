package dataplane

import (
	"bytes"
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Receive coalescing: a batch the device decrypted typically holds dozens
// of consecutive MTU-sized segments of one TCP flow. They are merged here,
// while copying them out of the device's buffers, into one packet of up to
// 64 KiB, so the netstack allocates, parses and processes one packet where
// there were forty (gVisor's own GRO then only sees what is left).
//
// Segments are merged only when the result is exactly what the sender's
// stack would have produced with a larger MSS: same flow and IP header
// fields, consecutive sequence numbers, same acknowledgement and TCP
// options, plain ACK segments of one size (a PSH or a shorter segment ends
// the run and is included). Everything else is passed on unchanged.

// maxCoalesced bounds a merged packet: IPv4's total length is 16 bits.
const maxCoalesced = 1<<16 - 1

// tcpSegment is a parsed candidate for coalescing.
type tcpSegment struct {
	pkt     []byte // the whole IP packet
	v6      bool
	ipLen   int // IP header length
	tcpLen  int // TCP header length
	payload int // TCP payload length
	seq     uint32
	flags   header.TCPFlags
}

// parseTCPSegment reports whether p is a TCP data segment that may be
// coalesced, and its layout.
func parseTCPSegment(p []byte) (tcpSegment, bool) {
	s := tcpSegment{pkt: p}
	if len(p) < header.IPv4MinimumSize {
		return s, false
	}
	switch p[0] >> 4 {
	case 4:
		ip := header.IPv4(p)
		if ip.HeaderLength() != header.IPv4MinimumSize || int(ip.TotalLength()) != len(p) ||
			ip.Protocol() != uint8(header.TCPProtocolNumber) || ip.Flags()&header.IPv4FlagMoreFragments != 0 || ip.FragmentOffset() != 0 {
			return s, false
		}
		s.ipLen = header.IPv4MinimumSize
	case 6:
		if len(p) < header.IPv6MinimumSize {
			return s, false
		}
		ip := header.IPv6(p)
		if ip.NextHeader() != uint8(header.TCPProtocolNumber) || int(ip.PayloadLength())+header.IPv6MinimumSize != len(p) {
			return s, false
		}
		s.v6, s.ipLen = true, header.IPv6MinimumSize
	default:
		return s, false
	}
	if len(p) < s.ipLen+header.TCPMinimumSize {
		return s, false
	}
	tcp := header.TCP(p[s.ipLen:])
	s.tcpLen = int(tcp.DataOffset())
	if s.tcpLen < header.TCPMinimumSize || s.ipLen+s.tcpLen > len(p) {
		return s, false
	}
	s.payload = len(p) - s.ipLen - s.tcpLen
	s.seq = tcp.SequenceNumber()
	s.flags = tcp.Flags()
	if s.payload == 0 || s.flags&^(header.TCPFlagAck|header.TCPFlagPsh) != 0 || s.flags&header.TCPFlagAck == 0 {
		return s, false // pure ACKs, SYN, FIN, RST, URG, ECN signals: not merged
	}
	return s, true
}

// follows reports whether s continues run r (whose first segment is first
// and whose next expected sequence number is next) in the same flow with
// identical headers apart from length, IPv4 ID, checksums, sequence number,
// window and PSH.
func (s *tcpSegment) follows(first *tcpSegment, next uint32) bool {
	if s.v6 != first.v6 || s.tcpLen != first.tcpLen || s.seq != next {
		return false
	}
	a, b := s.pkt, first.pkt
	if s.v6 {
		// version/class/flow label, next header, hop limit, addresses.
		if !bytes.Equal(a[0:4], b[0:4]) || !bytes.Equal(a[6:40], b[6:40]) {
			return false
		}
	} else {
		// version/IHL, TOS; flags/fragment, TTL, protocol; addresses.
		if !bytes.Equal(a[0:2], b[0:2]) || !bytes.Equal(a[6:10], b[6:10]) || !bytes.Equal(a[12:20], b[12:20]) {
			return false
		}
	}
	ta, tb := a[s.ipLen:s.ipLen+s.tcpLen], b[first.ipLen:first.ipLen+first.tcpLen]
	return bytes.Equal(ta[0:4], tb[0:4]) && // ports
		bytes.Equal(ta[8:12], tb[8:12]) && // acknowledgement number
		ta[12] == tb[12] && // data offset
		bytes.Equal(ta[header.TCPMinimumSize:], tb[header.TCPMinimumSize:]) // options (timestamps)
}

// coalescer merges runs of segments and hands each resulting packet to
// deliver. One is used per device Write call.
type coalescer struct {
	deliver func(v *buffer.View, v6 bool)

	first    tcpSegment   // first segment of the current run
	view     *buffer.View // the merged packet, once a second segment joined
	next     uint32       // sequence number the next segment must have
	runOpen  bool         // first is set
	runClose bool         // the run may not grow further
}

// add takes the next packet of the batch.
func (c *coalescer) add(p []byte) {
	s, ok := parseTCPSegment(p)
	if c.runOpen && ok && !c.runClose && s.follows(&c.first, c.next) && c.size()+s.payload <= maxCoalesced && s.payload <= c.first.payload {
		c.append(&s)
		return
	}
	c.flush()
	if !ok {
		c.deliver(buffer.NewViewWithData(p), p[0]>>4 == 6)
		return
	}
	c.first, c.runOpen, c.next = s, true, s.seq+uint32(s.payload)
	c.runClose = s.flags&header.TCPFlagPsh != 0
}

func (c *coalescer) size() int {
	if c.view != nil {
		return c.view.Size()
	}
	return len(c.first.pkt)
}

// append adds s's payload to the run, copying the first segment out of
// the device's buffer when the run starts to grow.
func (c *coalescer) append(s *tcpSegment) {
	if c.view == nil {
		c.view = buffer.NewView(maxCoalesced)
		c.view.Write(c.first.pkt)
	}
	c.view.Write(s.pkt[s.ipLen+s.tcpLen:])
	c.next += uint32(s.payload)
	// Later header fields win where they may differ: window, PSH.
	merged := c.view.AsSlice()
	tcp := header.TCP(merged[c.first.ipLen:])
	tcp.SetWindowSize(header.TCP(s.pkt[s.ipLen:]).WindowSize())
	if s.flags&header.TCPFlagPsh != 0 {
		tcp.SetFlags(uint8(tcp.Flags() | header.TCPFlagPsh))
		c.runClose = true
	}
	if s.payload < c.first.payload {
		c.runClose = true // a short segment ends what the sender sent in one go
	}
}

// flush delivers the current run, merged or as the single packet it is.
func (c *coalescer) flush() {
	if !c.runOpen {
		return
	}
	v := c.view
	if v == nil {
		v = buffer.NewViewWithData(c.first.pkt)
	} else {
		merged := v.AsSlice()
		if c.first.v6 {
			binary.BigEndian.PutUint16(merged[4:], uint16(len(merged)-header.IPv6MinimumSize))
		} else {
			ip := header.IPv4(merged)
			ip.SetTotalLength(uint16(len(merged)))
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		}
		// The TCP checksum is left as it was: receive checksums count as
		// verified (WireGuard authenticated every byte), see netstackLink.
	}
	c.deliver(v, c.first.v6)
	c.view, c.runOpen, c.runClose = nil, false, false
	c.first = tcpSegment{}
}
