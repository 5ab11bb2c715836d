package relayproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/meshinit/meshinit/meshapi"
)

func seedFrames() [][]byte {
	var k meshapi.Key
	k[0], k[31] = 1, 2
	return [][]byte{
		AppendPacket(nil, FrameSend, k, []byte("hello")),
		AppendPacket(AppendKeepAlive(nil), FrameRecv, k, nil),
		AppendPeerGone(nil, k, GoneNotHere),
		AppendPing(AppendPing(nil, FramePing, [8]byte{1}), FramePong, [8]byte{2}),
		{99, 0, 0, 0, 1, 7},         // unknown type: skipped
		{1, 0, 0, 0, 3, 1, 2, 3},    // send too short for a key
		{1, 0xff, 0xff, 0xff, 0xff}, // over the limit
		{4, 0, 0, 0, 8, 1, 2},       // truncated
		bytes.Repeat([]byte{6, 0, 0, 0, 0}, 40),
		// Replica link frames.
		AppendMeshAuth(nil, [ProofLen]byte{7}),
		AppendPresence(nil, PresenceHere, []meshapi.Key{k, {3}}),
		AppendPresence(nil, PresenceGone, []meshapi.Key{k}),
		AppendForward(nil, k, meshapi.Key{9}, []byte("pkt")),
		AppendForward(nil, k, meshapi.Key{9}, make([]byte, MaxPacket)),
		{8, 0, 0, 0, 1, 1},     // presence without keys
		{8, 0, 0, 0, 33, 3},    // presence with an unknown op (and a short key)
		{9, 0, 0, 0, 40, 1, 2}, // forward with one key and a bit
		{7, 0, 0, 0, 31, 0, 0}, // mesh-auth too short
	}
}

// FuzzFrameReader: any byte stream decodes into frames that re-encode to
// exactly the bytes they came from, or stops with an error; never a panic
// or a hang.
func FuzzFrameReader(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 0)
		var out []byte
		consumed := 0
		for {
			fr, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrFrame) && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			if fr.Type < FrameSend || fr.Type > FrameForward {
				t.Fatalf("unknown type %d returned", fr.Type)
			}
			if len(fr.Packet) > MaxPacket {
				t.Fatalf("packet of %d bytes", len(fr.Packet))
			}
			out = fr.Append(out)
			consumed = len(out)
		}
		// Re-encoded frames appear in the input in order (skipped unknown
		// frames aside), so re-decoding them gives the same frames.
		r2 := NewReader(bytes.NewReader(out), 0)
		var again []byte
		for {
			fr, err := r2.Next()
			if err != nil {
				break
			}
			again = fr.Append(again)
		}
		if !bytes.Equal(again, out) || len(again) != consumed {
			t.Fatalf("re-encoding is not stable")
		}
	})
}

func TestFrameRoundTrip(t *testing.T) {
	var k meshapi.Key
	k[5] = 9
	pkt := bytes.Repeat([]byte{0xAB}, MaxPacket)
	var b []byte
	b = AppendPacket(b, FrameSend, k, pkt)
	b = AppendPeerGone(b, k, GoneNotHere)
	b = AppendPing(b, FramePing, [8]byte{1, 2, 3})
	b = append(b, 77, 0, 0, 0, 2, 0, 0) // unknown: skipped
	b = AppendKeepAlive(b)
	r := NewReader(bytes.NewReader(b), 0)
	want := []FrameType{FrameSend, FramePeerGone, FramePing, FrameKeepAlive}
	for i, typ := range want {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type != typ {
			t.Fatalf("frame %d: type %v, want %v", i, f.Type, typ)
		}
		switch typ {
		case FrameSend:
			if f.Key != k || !bytes.Equal(f.Packet, pkt) {
				t.Fatal("send frame: key or packet differ")
			}
		case FramePeerGone:
			if f.Key != k || f.Reason != GoneNotHere {
				t.Fatal("peer-gone frame differs")
			}
		case FramePing:
			if f.Ping != [8]byte{1, 2, 3} {
				t.Fatal("ping data differs")
			}
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
	tooBig := AppendPacket(nil, FrameSend, k, make([]byte, MaxPacket+1))
	if _, err := NewReader(bytes.NewReader(tooBig), 0).Next(); !errors.Is(err, ErrFrame) {
		t.Fatalf("packet over 64 KiB: %v, want ErrFrame", err)
	}
}

func wsSeeds() [][]byte {
	return [][]byte{
		{0x82, 0x05, 'h', 'e', 'l', 'l', 'o'},
		{0x02, 0x02, 'a', 'b', 0x80, 0x01, 'c'},
		{0x89, 0x01, 'p', 0x82, 0x01, 'x'},
		{0x82, 0x7E, 0x00, 0x03, 1, 2, 3},
		{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2},
		{0x81, 0x01, 'x'},
		{0x88, 0x00},
		{0xC2, 0x00},
		{0x89, 0x7E, 0, 200},
	}
}

// FuzzWebSocketRead: any bytes from the network read as a server-side
// WebSocket stream yield payload bytes or an error; never a panic, never
// more payload than input, never a hang.
func FuzzWebSocketRead(f *testing.F) {
	for _, s := range wsSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go io.Copy(io.Discard, b) // pongs and close frames we answer with
		ws := NewWSConn(a, bufio.NewReader(bytes.NewReader(data)), true)
		got, _ := io.ReadAll(io.LimitReader(ws, int64(len(data))+1))
		if len(got) > len(data) {
			t.Fatalf("read %d payload bytes from %d input bytes", len(got), len(data))
		}
	})
}

func TestWebSocketCarriesTheStreamBothWays(t *testing.T) {
	a, b := net.Pipe()
	client, server := NewWSConn(a, nil, true), NewWSConn(b, nil, false)
	msg := bytes.Repeat([]byte("0123456789"), 20000) // 64-bit length
	go func() {
		client.Write(msg[:100])     // 7-bit length
		client.Write(msg[100:1000]) // 16-bit length
		client.Write(msg[1000:])
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("server read different bytes")
	}
	go server.Write([]byte("back"))
	back := make([]byte, 4)
	if _, err := io.ReadFull(client, back); err != nil || string(back) != "back" {
		t.Fatalf("client read %q, %v", back, err)
	}
	go client.Close()
	if _, err := server.Read(back); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

func TestWebSocketAcceptMatchesTheRFCExample(t *testing.T) {
	// RFC 6455 section 1.3.
	if got := WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept = %q", got)
	}
}
