package dataplane

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Software TCP segmentation: the netstack (told it has "host" segmentation
// offload) hands over TCP packets of up to 64 KiB with one set of headers;
// on the wire they must be MSS-sized segments, each with its own headers,
// sequence number and checksums. Doing the cut here, while copying into the
// device's buffers, costs one pass over the bytes we copy anyway, instead of
// one trip through gVisor's TCP and IP layers per segment.

// segmentCount is the number of wire packets pkt becomes.
func segmentCount(pkt *stack.PacketBuffer) int {
	if !isTCPOffload(pkt) {
		return 1
	}
	size, mss := pkt.Data().Size(), int(pkt.GSOOptions.MSS)
	if mss == 0 || size <= mss {
		return 1
	}
	return (size + mss - 1) / mss
}

func isTCPOffload(pkt *stack.PacketBuffer) bool {
	t := pkt.GSOOptions.Type
	return t == stack.GSOTCPv4 || t == stack.GSOTCPv6
}

// writeSegments writes segments first, first+1, … of pkt into bufs[i][offset:]
// and their lengths into sizes[i]. It returns how many it wrote and whether
// that was the last segment of pkt.
func writeSegments(pkt *stack.PacketBuffer, first int, bufs [][]byte, sizes []int, offset int) (wrote int, finished bool) {
	total := segmentCount(pkt)
	if len(bufs) == 0 {
		return 0, first >= total
	}
	views := pkt.AsSlices()
	if !isTCPOffload(pkt) {
		sizes[0] = copyFrom(bufs[0][offset:], views, 0, pkt.Size())
		return 1, true
	}
	for i := first; i < total && wrote < len(bufs); i++ {
		sizes[wrote] = writeSegment(bufs[wrote][offset:], pkt, views, i, total)
		wrote++
	}
	return wrote, first+wrote >= total
}

// writeSegment writes segment i of n of the TCP offload packet pkt into dst
// and returns its length.
func writeSegment(dst []byte, pkt *stack.PacketBuffer, views [][]byte, i, n int) int {
	netLen := len(pkt.NetworkHeader().Slice())
	hdrLen := pkt.HeaderSize() // network + TCP header (no link header here)
	mss := int(pkt.GSOOptions.MSS)
	dataLen := pkt.Data().Size()
	start := i * mss
	segLen := dataLen - start
	if n > 1 && segLen > mss {
		segLen = mss
	}
	copyFrom(dst, views, 0, hdrLen)
	copyFrom(dst[hdrLen:], views, hdrLen+start, segLen)
	pktLen := hdrLen + segLen
	seg := dst[:pktLen]

	var src, dstAddr tcpip.Address
	if pkt.GSOOptions.Type == stack.GSOTCPv4 {
		ip := header.IPv4(seg)
		ip.SetTotalLength(uint16(pktLen))
		ip.SetID(ip.ID() + uint16(i))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		src, dstAddr = ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv6(seg)
		ip.SetPayloadLength(uint16(pktLen - header.IPv6MinimumSize))
		src, dstAddr = ip.SourceAddress(), ip.DestinationAddress()
	}

	tcp := header.TCP(seg[netLen:])
	if n > 1 {
		tcp.SetSequenceNumber(tcp.SequenceNumber() + uint32(start))
		flags := tcp.Flags()
		if i > 0 {
			flags &^= header.TCPFlagCwr // congestion window reduced: said once
		}
		if i < n-1 {
			flags &^= header.TCPFlagFin | header.TCPFlagPsh // end-of-data marks go on the last segment
		}
		tcp.SetFlags(uint8(flags))
	}
	// The netstack left only the pseudo-header sum here (CHECKSUM_PARTIAL);
	// compute the full checksum of this segment.
	tcpLen := pktLen - netLen
	tcp.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dstAddr, uint16(tcpLen))
	xsum = checksum.Checksum(seg[netLen:], xsum)
	binary.BigEndian.PutUint16(seg[netLen+header.TCPChecksumOffset:], ^xsum)
	return pktLen
}

// copyFrom copies n bytes starting at byte off of the concatenation of
// views into dst and returns n.
func copyFrom(dst []byte, views [][]byte, off, n int) int {
	want := n
	d := 0
	for _, v := range views {
		if n == 0 {
			break
		}
		if off >= len(v) {
			off -= len(v)
			continue
		}
		c := copy(dst[d:d+min(n, len(v)-off)], v[off:])
		d += c
		n -= c
		off = 0
	}
	return want - n
}
