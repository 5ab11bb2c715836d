package dataplane

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// offloadPacket builds a TCP packet the way gVisor hands it to a link with
// host segmentation offload: headers in front, the whole payload behind,
// the checksum field holding only the pseudo-header sum.
func offloadPacket(t *testing.T, v6 bool, payload []byte, mss int, flags header.TCPFlags) *stack.PacketBuffer {
	t.Helper()
	src4, dst4 := tcpip.AddrFrom4([4]byte{100, 64, 0, 1}), tcpip.AddrFrom4([4]byte{100, 64, 0, 2})
	src6 := tcpip.AddrFrom16([16]byte{0xfd, 0x7a, 15: 1})
	dst6 := tcpip.AddrFrom16([16]byte{0xfd, 0x7a, 15: 2})
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv6MinimumSize + header.TCPMinimumSize + 12,
		Payload:            buffer.MakeWithData(payload),
	})
	opts := []byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8} // NOP NOP timestamp
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + len(opts)))
	tcp.Encode(&header.TCPFields{SrcPort: 4000, DstPort: 80, SeqNum: 1_000_000, AckNum: 7, DataOffset: uint8(header.TCPMinimumSize + len(opts)), Flags: flags, WindowSize: 512})
	copy(tcp[header.TCPMinimumSize:], opts)
	tcpLen := uint16(len(tcp) + len(payload))
	if v6 {
		tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src6, dst6, tcpLen))
		ip := header.IPv6(pkt.NetworkHeader().Push(header.IPv6MinimumSize))
		ip.Encode(&header.IPv6Fields{PayloadLength: tcpLen, TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: src6, DstAddr: dst6})
		pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv6, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: uint16(mss), L3HdrLen: header.IPv6MinimumSize}
	} else {
		tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src4, dst4, tcpLen))
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{TotalLength: header.IPv4MinimumSize + tcpLen, ID: 77, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src4, DstAddr: dst4, Flags: header.IPv4FlagDontFragment})
		pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: uint16(mss), L3HdrLen: header.IPv4MinimumSize}
	}
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	if v6 {
		pkt.NetworkProtocolNumber = header.IPv6ProtocolNumber
	}
	return pkt
}

// checkSegment verifies one wire segment: lengths, checksums, and that its
// payload is the right slice of the original.
func checkSegment(t *testing.T, seg []byte, v6 bool, payload []byte, mss, i, n int) header.TCP {
	t.Helper()
	var tcp header.TCP
	var src, dst tcpip.Address
	if v6 {
		ip := header.IPv6(seg)
		if int(ip.PayloadLength())+header.IPv6MinimumSize != len(seg) {
			t.Fatalf("segment %d: IPv6 payload length %d for %d bytes", i, ip.PayloadLength(), len(seg))
		}
		tcp, src, dst = header.TCP(seg[header.IPv6MinimumSize:]), ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv4(seg)
		if int(ip.TotalLength()) != len(seg) || !ip.IsChecksumValid() {
			t.Fatalf("segment %d: IPv4 length %d for %d bytes, header checksum valid %v", i, ip.TotalLength(), len(seg), ip.IsChecksumValid())
		}
		if ip.ID() != uint16(77+i) {
			t.Errorf("segment %d: IP ID %d, want %d", i, ip.ID(), 77+i)
		}
		tcp, src, dst = header.TCP(seg[header.IPv4MinimumSize:]), ip.SourceAddress(), ip.DestinationAddress()
	}
	data := tcp[tcp.DataOffset():]
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))
	if checksum.Checksum(tcp, xsum) != 0xffff {
		t.Errorf("segment %d: TCP checksum invalid", i)
	}
	start := i * mss
	want := payload[start:min(start+mss, len(payload))]
	if !bytes.Equal(data, want) {
		t.Fatalf("segment %d: payload differs (got %d bytes, want %d)", i, len(data), len(want))
	}
	if tcp.SequenceNumber() != 1_000_000+uint32(start) {
		t.Errorf("segment %d: seq %d, want %d", i, tcp.SequenceNumber(), 1_000_000+start)
	}
	return tcp
}

func TestSegmentationCutsOffloadPackets(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{1, 1000, 1228, 1229, 5000, 65000} {
			const mss = 1228
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			pkt := offloadPacket(t, v6, payload, mss, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin)
			n := segmentCount(pkt)
			if want := (size + mss - 1) / mss; n != want {
				t.Fatalf("v6=%v size %d: %d segments, want %d", v6, size, n, want)
			}
			// Drain through a batch smaller than the segment count so the
			// resumption path is exercised too.
			const offset = 16
			bufs := make([][]byte, 7)
			for i := range bufs {
				bufs[i] = make([]byte, offset+2048)
			}
			sizes := make([]int, len(bufs))
			seg := 0
			for done := false; !done; {
				var wrote int
				wrote, done = writeSegments(pkt, seg, bufs, sizes, offset)
				for j := 0; j < wrote; j++ {
					tcp := checkSegment(t, bufs[j][offset:offset+sizes[j]], v6, payload, mss, seg+j, n)
					last := seg+j == n-1
					if got := tcp.Flags()&(header.TCPFlagFin|header.TCPFlagPsh) != 0; got != last {
						t.Errorf("v6=%v size %d segment %d: FIN/PSH set=%v, want only on the last", v6, size, seg+j, got)
					}
				}
				seg += wrote
			}
			if seg != n {
				t.Errorf("v6=%v size %d: wrote %d segments, want %d", v6, size, seg, n)
			}
			pkt.DecRef()
		}
	}
}

func TestNonOffloadPacketIsCopiedAsIs(t *testing.T) {
	raw := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 100, 64, 0, 2}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(raw)})
	defer pkt.DecRef()
	buf := [][]byte{make([]byte, 100)}
	sizes := []int{0}
	wrote, done := writeSegments(pkt, 0, buf, sizes, 4)
	if wrote != 1 || !done || !bytes.Equal(buf[0][4:4+sizes[0]], raw) {
		t.Errorf("wrote %d done %v bytes %x", wrote, done, buf[0][4:4+sizes[0]])
	}
}
