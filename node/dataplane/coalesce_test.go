package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// segSpec describes a test TCP segment.
type segSpec struct {
	flow    byte // selects the source port (and address for v6)
	v6      bool
	seq     uint32
	ack     uint32
	flags   header.TCPFlags
	tsval   uint32
	payload []byte
}

func buildSegment(s segSpec) []byte {
	opts := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 9}
	binary.BigEndian.PutUint32(opts[4:], s.tsval)
	tcpLen := header.TCPMinimumSize + len(opts)
	ipLen := header.IPv4MinimumSize
	if s.v6 {
		ipLen = header.IPv6MinimumSize
	}
	p := make([]byte, ipLen+tcpLen+len(s.payload))
	if s.v6 {
		ip := header.IPv6(p)
		ip.Encode(&header.IPv6Fields{PayloadLength: uint16(tcpLen + len(s.payload)), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: s.flow}), DstAddr: tcpip.AddrFrom16([16]byte{0xfd, 15: 200})})
	} else {
		ip := header.IPv4(p)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(p)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), ID: uint16(s.seq),
			SrcAddr: tcpip.AddrFrom4([4]byte{100, 64, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{100, 64, 0, 2}), Flags: header.IPv4FlagDontFragment})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	tcp := header.TCP(p[ipLen:])
	tcp.Encode(&header.TCPFields{SrcPort: 1000 + uint16(s.flow), DstPort: 80, SeqNum: s.seq, AckNum: s.ack, DataOffset: uint8(tcpLen), Flags: s.flags, WindowSize: 1000})
	copy(tcp[header.TCPMinimumSize:], opts)
	copy(p[ipLen+tcpLen:], s.payload)
	return p
}

// runCoalescer feeds packets through a coalescer and returns what it
// delivered, in order.
func runCoalescer(pkts [][]byte) [][]byte {
	var out [][]byte
	c := coalescer{deliver: func(v *buffer.View, _ bool) {
		out = append(out, bytes.Clone(v.AsSlice()))
		v.Release()
	}}
	for _, p := range pkts {
		c.add(p)
	}
	c.flush()
	return out
}

func payloadOf(t testing.TB, p []byte) (flow string, seq uint32, payload []byte) {
	t.Helper()
	s, ok := parseTCPSegment(p)
	if !ok {
		t.Fatalf("delivered packet is not a valid TCP data segment: %x", p[:min(len(p), 60)])
	}
	tcp := header.TCP(p[s.ipLen:])
	if !s.v6 && !header.IPv4(p).IsChecksumValid() {
		t.Fatal("merged IPv4 header checksum invalid")
	}
	return fmt.Sprint(s.v6, tcp.SourcePort()), s.seq, p[s.ipLen+s.tcpLen:]
}

func TestCoalescerMergesARun(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		const mss = 1228
		var in [][]byte
		var want []byte
		for i := range 40 {
			pl := bytes.Repeat([]byte{byte(i)}, mss)
			flags := header.TCPFlagAck
			if i == 39 {
				flags |= header.TCPFlagPsh
			}
			in = append(in, buildSegment(segSpec{v6: v6, seq: 5000 + uint32(i*mss), ack: 7, flags: flags, payload: pl}))
			want = append(want, pl...)
		}
		out := runCoalescer(in)
		if len(out) != 1 {
			t.Fatalf("v6=%v: %d packets, want 1", v6, len(out))
		}
		_, seq, payload := payloadOf(t, out[0])
		if seq != 5000 || !bytes.Equal(payload, want) {
			t.Errorf("v6=%v: merged seq %d, payload equal %v", v6, seq, bytes.Equal(payload, want))
		}
		ipLen := header.IPv4MinimumSize
		if v6 {
			ipLen = header.IPv6MinimumSize
		}
		if header.TCP(out[0][ipLen:]).Flags()&header.TCPFlagPsh == 0 {
			t.Errorf("v6=%v: PSH of the last segment lost", v6)
		}
	}
}

func TestCoalescerSplitsWhatMustNotMerge(t *testing.T) {
	pl := bytes.Repeat([]byte{1}, 1000)
	seg := func(flow byte, seq, ack uint32, flags header.TCPFlags, tsval uint32, payload []byte) []byte {
		return buildSegment(segSpec{flow: flow, seq: seq, ack: ack, flags: flags, tsval: tsval, payload: payload})
	}
	udp := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 100, 64, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	cases := map[string][][]byte{
		"gap in sequence":    {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(0, 2000, 1, header.TCPFlagAck, 0, pl)},
		"other ack":          {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(0, 1000, 2, header.TCPFlagAck, 0, pl)},
		"other timestamp":    {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(0, 1000, 1, header.TCPFlagAck, 5, pl)},
		"other flow":         {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(1, 1000, 1, header.TCPFlagAck, 0, pl)},
		"after PSH":          {seg(0, 0, 1, header.TCPFlagAck|header.TCPFlagPsh, 0, pl), seg(0, 1000, 1, header.TCPFlagAck, 0, pl)},
		"FIN":                {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(0, 1000, 1, header.TCPFlagAck|header.TCPFlagFin, 0, pl)},
		"pure ACK":           {seg(0, 0, 1, header.TCPFlagAck, 0, pl), seg(0, 1000, 1, header.TCPFlagAck, 0, nil)},
		"bigger than first":  {seg(0, 0, 1, header.TCPFlagAck, 0, pl[:500]), seg(0, 500, 1, header.TCPFlagAck, 0, pl)},
		"UDP in between":     {seg(0, 0, 1, header.TCPFlagAck, 0, pl), udp, seg(0, 1000, 1, header.TCPFlagAck, 0, pl)},
		"v4 then v6, same #": {seg(0, 0, 1, header.TCPFlagAck, 0, pl), buildSegment(segSpec{v6: true, seq: 1000, ack: 1, flags: header.TCPFlagAck, payload: pl})},
	}
	for name, in := range cases {
		out := runCoalescer(in)
		if len(out) != len(in) {
			t.Errorf("%s: %d packets out of %d, want them unmerged", name, len(out), len(in))
			continue
		}
		for i := range in {
			if !bytes.Equal(out[i], in[i]) {
				t.Errorf("%s: packet %d changed or reordered", name, i)
			}
		}
	}
}

func TestCoalescerStopsAt64KiB(t *testing.T) {
	const mss = 1400
	var in [][]byte
	for i := range 100 {
		in = append(in, buildSegment(segSpec{seq: uint32(i * mss), ack: 1, flags: header.TCPFlagAck, payload: make([]byte, mss)}))
	}
	out := runCoalescer(in)
	total := 0
	for _, p := range out {
		if len(p) > maxCoalesced {
			t.Fatalf("merged packet of %d bytes", len(p))
		}
		_, _, pl := payloadOf(t, p)
		total += len(pl)
	}
	if total != 100*mss || len(out) < 3 {
		t.Errorf("%d packets carrying %d bytes, want ≥3 packets carrying %d", len(out), total, 100*mss)
	}
}

// FuzzCoalescer drives the coalescer with segment sequences built from the
// input and checks that every flow's byte stream comes out intact and in
// order, in valid packets.
func FuzzCoalescer(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 10, 0, 0, 10, 1})
	f.Add([]byte{0, 200, 0, 1, 200, 0, 0, 200, 2, 1, 200, 0})
	f.Add([]byte{3, 255, 0, 3, 255, 0, 3, 255, 0, 3, 1, 8})
	f.Fuzz(func(t *testing.T, in []byte) {
		next := map[byte]uint32{}
		wantStream := map[string][]byte{}
		var pkts [][]byte
		for i := 0; i+2 < len(in) && len(pkts) < 200; i += 3 {
			flow, size, ctl := in[i]&3, int(in[i+1])*8, in[i+2]
			flags := header.TCPFlagAck
			if ctl&1 != 0 {
				flags |= header.TCPFlagPsh
			}
			payload := bytes.Repeat([]byte{byte(i)}, size)
			s := segSpec{flow: flow, v6: flow == 3, seq: next[flow], ack: 1, flags: flags, tsval: uint32(ctl >> 4), payload: payload}
			if ctl&2 != 0 {
				s.seq += 1 // a gap
			}
			p := buildSegment(s)
			pkts = append(pkts, p)
			if size > 0 {
				key := fmt.Sprint(s.v6, 1000+uint16(flow))
				wantStream[key] = append(wantStream[key], payload...)
				next[flow] = s.seq + uint32(size)
			}
		}
		gotStream := map[string][]byte{}
		for _, p := range runCoalescer(pkts) {
			s, ok := parseTCPSegment(p)
			if !ok {
				if _, ok := parseTCPSegmentAnyPayload(p); !ok {
					t.Fatalf("delivered an invalid packet")
				}
				continue // a pure ACK passed through
			}
			tcp := header.TCP(p[s.ipLen:])
			key := fmt.Sprint(s.v6, tcp.SourcePort())
			gotStream[key] = append(gotStream[key], p[s.ipLen+s.tcpLen:]...)
		}
		for k, want := range wantStream {
			if !bytes.Equal(gotStream[k], want) {
				t.Fatalf("flow %s: %d bytes out, %d in, or reordered", k, len(gotStream[k]), len(want))
			}
		}
	})
}

// parseTCPSegmentAnyPayload accepts zero-payload segments too (for the fuzz
// check that pure ACKs come out valid).
func parseTCPSegmentAnyPayload(p []byte) (tcpSegment, bool) {
	if len(p) >= header.IPv4MinimumSize && p[0]>>4 == 4 && int(header.IPv4(p).TotalLength()) == len(p) {
		return tcpSegment{}, true
	}
	if len(p) >= header.IPv6MinimumSize && p[0]>>4 == 6 && int(header.IPv6(p).PayloadLength())+header.IPv6MinimumSize == len(p) {
		return tcpSegment{}, true
	}
	return tcpSegment{}, false
}
