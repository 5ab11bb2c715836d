package stun

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	tx := TxID{1, 2, 3}
	f.Add(Request(tx))
	f.Add(Response(tx, netip.MustParseAddrPort("198.18.0.1:4242")))
	f.Add(Response(tx, netip.MustParseAddrPort("[2001:db8::1]:9")))
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x80, 0x22, 0, 0})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if tx, err := ParseRequest(b); err == nil {
			// A request we accept gets an answer we can read back.
			from := netip.MustParseAddrPort("198.18.1.2:3478")
			rtx, ap, err := ParseResponse(Response(tx, from))
			if err != nil || rtx != tx || ap != from {
				t.Fatalf("answer to an accepted request: %v %v %v", rtx, ap, err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("request error not ErrMalformed: %v", err)
		}
		if _, _, err := ParseResponse(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("response error not ErrMalformed: %v", err)
		}
	})
}

func TestResponseRoundTrip(t *testing.T) {
	for _, s := range []string{"198.18.0.7:65535", "[2001:db8::42]:1"} {
		ap := netip.MustParseAddrPort(s)
		tx := NewTxID()
		rtx, got, err := ParseResponse(Response(tx, ap))
		if err != nil || rtx != tx || got != ap {
			t.Errorf("%s: got %v %v %v", s, rtx, got, err)
		}
	}
	if Is([]byte{1, 0, 0, 0, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Error("a WireGuard-looking first byte (1) passes as STUN")
	}
}

// TestServerAnswersARealClient: a plain UDP socket sends a binding request
// and learns its own address; junk gets no answer.
func TestServerAnswersARealClient(t *testing.T) {
	s, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Serve()
	c, err := net.DialUDP("udp", nil, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("not stun at all, definitely longer than twenty bytes"))
	tx := NewTxID()
	c.Write(Request(tx))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rtx, ap, err := ParseResponse(buf[:n])
	if err != nil || rtx != tx {
		t.Fatalf("response: %v %v", rtx, err)
	}
	if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); ap != want {
		t.Fatalf("mapped address %v, want %v", ap, want)
	}
	if a, ig := s.Counts(); a != 1 || ig != 1 {
		t.Fatalf("answered %d ignored %d, want 1 and 1", a, ig)
	}
}
