package dnsserver

import (
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/meshinit/meshinit/node/nametable"
)

// TTL is the time to live of every answer from the map, positive and
// negative (the SOA's minimum): short, because the map changes and the
// source of truth is in memory, so a peer that joins or leaves is seen by
// caching clients within 5 s.
const TTL = 5

// maxUDPSize is what a client without EDNS accepts over UDP (RFC 1035);
// ednsSize is what we advertise and accept with EDNS (the DNS flag day's
// recommendation).
const (
	maxUDPSize = 512
	ednsSize   = 1232
)

// ownership says who answers a question.
type ownership int

const (
	forward    ownership = iota // not the mesh's: forward upstream
	node                        // a node's name: its addresses
	apex                        // the mesh domain itself
	noSuchName                  // under the mesh domain, or a mesh address, that no node holds
	reverse                     // a mesh address's PTR name, held by entry
)

// lookup is the outcome of classifying one question name.
type lookup struct {
	own    ownership
	entry  nametable.Entry
	domain string // the mesh domain, lower case, no final dot
}

// classify decides whether qname (dotted, with its final dot, any case) is
// the mesh's to answer.
func classify(names *nametable.Table, qname string) lookup {
	name := strings.ToLower(strings.TrimSuffix(qname, "."))
	l := lookup{domain: names.Domain()}
	if l.domain != "" {
		if name == l.domain {
			l.own = apex
			return l
		}
		if label, ok := strings.CutSuffix(name, "."+l.domain); ok {
			l.own = noSuchName
			if e, found := names.Lookup(label); found && !strings.Contains(label, ".") {
				l.own, l.entry = node, e
			}
			return l
		}
	}
	if !strings.Contains(name, ".") {
		if e, found := names.Lookup(name); found {
			l.own, l.entry = node, e
		}
		return l // a single label that is no node: forwarded
	}
	if a, ok := reverseAddr(name); ok && names.InMesh(a) {
		l.own = noSuchName
		if e, found := names.LookupAddr(a); found {
			l.own, l.entry = reverse, e
		}
	}
	return l
}

// query is what answer needs of a parsed query.
type query struct {
	hdr  dnsmessage.Header
	q    dnsmessage.Question
	edns bool
}

var errNotQuery = errors.New("not a query")

// parseQuery reads a query's header and its one question. A message that
// is not a query at all (too short, or a response) gives errNotQuery: it is
// dropped. Other problems give a response to send (FORMERR, NOTIMP).
func parseQuery(msg []byte) (query, []byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return query{}, nil, errNotQuery
	}
	q := query{hdr: h}
	if h.OpCode != 0 {
		return q, q.reply(dnsmessage.RCodeNotImplemented, false), errors.New("opcode not implemented")
	}
	if q.q, err = p.Question(); err != nil {
		return q, q.reply(dnsmessage.RCodeFormatError, false), err
	}
	if _, err := p.Question(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return q, q.reply(dnsmessage.RCodeFormatError, false), errors.New("more than one question")
	}
	q.edns = hasEDNS(&p)
	return q, nil, nil
}

// hasEDNS reports whether the query carries an OPT record. Errors in the
// later sections only mean "no": the question is all we answer.
func hasEDNS(p *dnsmessage.Parser) bool {
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return false
	}
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return false
		}
		if h.Type == dnsmessage.TypeOPT {
			return true
		}
		if p.SkipAdditional() != nil {
			return false
		}
	}
}

// answer returns the response for a query the mesh answers, or
// forward=true when the query should go upstream as it is. A nil response
// without forward means: drop it (not a query). With ipv4Only, mesh names
// have no AAAA records.
func answer(names *nametable.Table, msg []byte, ipv4Only bool) (resp []byte, forwardIt bool) {
	q, errResp, err := parseQuery(msg)
	if err != nil {
		return errResp, false
	}
	l := classify(names, q.q.Name.String())
	if l.own == forward {
		return nil, true
	}
	return q.build(l, ipv4Only), false
}

// build answers from the map: records for node and reverse, NODATA or
// NXDOMAIN with the zone's SOA otherwise.
func (q query) build(l lookup, ipv4Only bool) []byte {
	var records []record
	rcode := dnsmessage.RCodeSuccess
	classOK := q.q.Class == dnsmessage.ClassINET || q.q.Class == dnsmessage.ClassANY
	switch l.own {
	case node:
		if classOK {
			records = addressRecords(l.entry, q.q.Type, ipv4Only)
		}
	case reverse:
		if classOK && (q.q.Type == dnsmessage.TypePTR || q.q.Type == dnsmessage.TypeALL) {
			if ptr, err := dnsmessage.NewName(fqdn(l.entry.Name, l.domain)); err == nil {
				records = []record{{typ: dnsmessage.TypePTR, body: &dnsmessage.PTRResource{PTR: ptr}}}
			}
		}
	case apex:
		if classOK && (q.q.Type == dnsmessage.TypeSOA || q.q.Type == dnsmessage.TypeALL) {
			records = soaRecords(l.domain, "")
		}
	case noSuchName:
		rcode = dnsmessage.RCodeNameError
	}
	var authority []record
	if len(records) == 0 && l.domain != "" && l.own != reverse {
		authority = soaRecords(l.domain, l.domain+".")
	}
	return q.pack(rcode, true, records, authority)
}

// record is one resource record to add: its owner is the question's name
// unless owner is set.
type record struct {
	typ   dnsmessage.Type
	body  dnsmessage.ResourceBody
	owner string
}

func addressRecords(e nametable.Entry, t dnsmessage.Type, ipv4Only bool) []record {
	var out []record
	if (t == dnsmessage.TypeA || t == dnsmessage.TypeALL) && e.IPv4.Is4() {
		out = append(out, record{typ: dnsmessage.TypeA, body: &dnsmessage.AResource{A: e.IPv4.As4()}})
	}
	if (t == dnsmessage.TypeAAAA || t == dnsmessage.TypeALL) && e.IPv6.Is6() && !e.IPv6.Is4In6() && !ipv4Only {
		out = append(out, record{typ: dnsmessage.TypeAAAA, body: &dnsmessage.AAAAResource{AAAA: e.IPv6.As16()}})
	}
	return out
}

func fqdn(label, domain string) string {
	if domain == "" {
		return label + "."
	}
	return label + "." + domain + "."
}

// soaRecords is the mesh domain's SOA as a record list (owner set when it
// is not the question's name), or none when the domain is too long to
// build one. Only its minimum matters to clients: the time they may cache
// a negative answer.
func soaRecords(domain, owner string) []record {
	ns, err1 := dnsmessage.NewName("ns." + domain + ".")
	mbox, err2 := dnsmessage.NewName("hostmaster." + domain + ".")
	if err1 != nil || err2 != nil {
		return nil
	}
	body := &dnsmessage.SOAResource{NS: ns, MBox: mbox, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: TTL}
	return []record{{typ: dnsmessage.TypeSOA, body: body, owner: owner}}
}

// reply is an answer without records (errors).
func (q query) reply(rcode dnsmessage.RCode, authoritative bool) []byte {
	return q.pack(rcode, authoritative, nil, nil)
}

// pack builds the response. A query that could not be parsed as far as
// its question (q.q.Name empty) is answered without a question section.
func (q query) pack(rcode dnsmessage.RCode, authoritative bool, answers, authority []record) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, maxUDPSize), dnsmessage.Header{
		ID: q.hdr.ID, Response: true, OpCode: q.hdr.OpCode, Authoritative: authoritative,
		RecursionDesired: q.hdr.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	out, err := q.packSections(&b, answers, authority)
	if err != nil {
		return nil
	}
	return out
}

func (q query) packSections(b *dnsmessage.Builder, answers, authority []record) ([]byte, error) {
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if q.q.Name.Length > 0 {
		if err := b.Question(q.q); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if err := q.addRecords(b, answers); err != nil {
		return nil, err
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	if err := q.addRecords(b, authority); err != nil {
		return nil, err
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	if q.edns {
		var h dnsmessage.ResourceHeader
		if err := h.SetEDNS0(ednsSize, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(h, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

func (q query) addRecords(b *dnsmessage.Builder, rs []record) error {
	for _, r := range rs {
		name := q.q.Name
		if r.owner != "" {
			var err error
			if name, err = dnsmessage.NewName(r.owner); err != nil {
				return err
			}
		}
		h := dnsmessage.ResourceHeader{Name: name, Type: r.typ, Class: dnsmessage.ClassINET, TTL: TTL}
		var err error
		switch body := r.body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(h, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(h, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(h, *body)
		case *dnsmessage.SOAResource:
			err = b.SOAResource(h, *body)
		default:
			err = errors.New("unsupported record")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// serverFailure is the SERVFAIL for a query that could not be forwarded;
// nil if msg is not a query.
func serverFailure(msg []byte) []byte {
	q, errResp, err := parseQuery(msg)
	if err != nil {
		return errResp
	}
	return q.reply(dnsmessage.RCodeServerFailure, false)
}

// reverseAddr reads the address of a reverse name: "4.3.2.1.in-addr.arpa"
// or 32 nibbles then "ip6.arpa" (lower case, no final dot).
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(rest, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // the first nibble is the last one of the address
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
