package dnsserver

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzAnswer feeds arbitrary bytes, as a local app could send them, to the
// query handler (on a node with and without IPv6): it never panics; it
// drops, forwards, or answers with a response that parses, carries the
// query's ID, and repeats its question; an IPv4-only node never gives an
// AAAA record.
func FuzzAnswer(f *testing.F) {
	for _, q := range [][]byte{
		newQuery(f, 1, "web.", dnsmessage.TypeA, false),
		newQuery(f, 2, "web.mesh.internal.", dnsmessage.TypeAAAA, true),
		newQuery(f, 3, "ghost.mesh.internal.", dnsmessage.TypeMX, false),
		newQuery(f, 4, "mesh.internal.", dnsmessage.TypeSOA, false),
		newQuery(f, 5, "2.0.64.100.in-addr.arpa.", dnsmessage.TypePTR, false),
		newQuery(f, 6, "outside.test.", dnsmessage.TypeA, false),
		{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0},
		{},
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	names := testNames()
	f.Fuzz(func(t *testing.T, msg []byte, ipv4Only bool) {
		resp, fwd := answer(names, msg, ipv4Only)
		if resp == nil {
			return
		}
		if fwd {
			t.Fatal("both an answer and forward")
		}
		var p dnsmessage.Parser
		h, err := p.Start(resp)
		if err != nil || !h.Response || h.ID != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("response %x to %x: header %+v, %v", resp, msg, h, err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response %x does not parse: %v", resp, err)
		}
		for _, a := range m.Answers {
			if ipv4Only && a.Header.Type == dnsmessage.TypeAAAA {
				t.Fatalf("an IPv4-only node answered %x with an AAAA record", msg)
			}
		}
		var qp dnsmessage.Parser
		qp.Start(msg)
		if q, err := qp.Question(); err == nil && h.RCode == dnsmessage.RCodeSuccess {
			if len(m.Questions) != 1 || m.Questions[0] != q {
				t.Fatalf("question %v answered with %v", q, m.Questions)
			}
		}
	})
}

// FuzzMatches: arbitrary answers from an upstream are checked against the
// query without a panic, and an answer is never taken for a query with
// another ID.
func FuzzMatches(f *testing.F) {
	q := newQuery(f, 0x1234, "outside.test.", dnsmessage.TypeA, false)
	ok := append([]byte(nil), q...)
	ok[2] |= 0x80
	f.Add(q, ok)
	f.Add(q, []byte{0x12, 0x34, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, query, resp []byte) {
		if matches(query, resp) && (len(query) < 2 || len(resp) < 2 || query[0] != resp[0] || query[1] != resp[1]) {
			t.Fatalf("%x taken as the answer to %x", resp, query)
		}
	})
}
