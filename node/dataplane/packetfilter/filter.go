package packetfilter

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/policy"
)

// Reason says why a packet was dropped.
type Reason uint8

// Drop reasons, as counted in Stats.
const (
	ReasonPolicy      Reason = iota // no rule allows the flow for the source's tags
	ReasonOwnListener               // aimed at meshinit's own proxy or health port
	ReasonNotLocal                  // not addressed to this node's mesh addresses
	ReasonFragment                  // a non-first fragment while a policy is in force
	ReasonMalformed                 // too short or inconsistent headers
	ReasonUnknownPeer               // from an address no peer in the map holds
	numReasons
)

var reasonNames = [numReasons]string{"policy", "own_listener", "not_local", "fragment", "malformed", "unknown_peer"}

func (r Reason) String() string { return reasonNames[r] }

// Verdict is the filter's answer for one inbound packet.
type Verdict uint8

const (
	// Pass: deliver the packet.
	Pass Verdict = iota
	// Drop: discard it silently.
	Drop
	// Reject: discard it and send the answer Inbound wrote back to the peer.
	Reject
)

// Filter is one node's inbound filter. It is safe for concurrent use:
// Inbound from many goroutines, Outbound from one at a time.
type Filter struct {
	local []netip.Addr // the node's own mesh addresses (immutable)
	state atomic.Pointer[state]
	mu    sync.Mutex // serialises state changes
	ct    *conntrack
	drops [numReasons]atomic.Uint64

	rejectMu     sync.Mutex
	rejectTokens float64
	rejectAt     time.Time
}

// state is replaced whole on every change; readers load it once per packet.
type state struct {
	version   string
	rules     []policy.Rule // nil: no policy, allow all
	peerTags  map[netip.Addr][]string
	access    map[netip.Addr][]policy.PortRange // what each peer may open, under rules
	protected []uint16                          // TCP ports no peer may reach
}

// New returns a filter for a node with the given mesh addresses, with no
// policy (everything allowed but the protected ports, none yet).
func New(local []netip.Addr) *Filter {
	f := &Filter{local: slices.Clone(local), ct: newConntrack(DefaultMaxFlows), rejectTokens: rejectBurst}
	f.state.Store(&state{peerTags: map[netip.Addr][]string{}})
	return f
}

// update copies the state, lets change edit the copy, recomputes peer
// access if asked, and publishes it.
func (f *Filter) update(change func(s *state) (recompute bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.state.Load()
	s := *old
	s.peerTags = old.peerTags
	if change(&s) {
		s.access = nil
		if s.rules != nil {
			s.access = make(map[netip.Addr][]policy.PortRange, len(s.peerTags))
			for a, tags := range s.peerTags {
				s.access[a] = accessFor(s.rules, tags)
			}
		}
	}
	f.state.Store(&s)
}

// accessFor is the union of the port ranges of the rules whose source
// matches tags.
func accessFor(rules []policy.Rule, tags []string) []policy.PortRange {
	var out []policy.PortRange
	for _, r := range rules {
		for _, sel := range r.Src {
			if sel.Matches(tags) {
				out = append(out, r.IP...)
				break
			}
		}
	}
	if out == nil {
		out = []policy.PortRange{}
	}
	return out
}

// SetRules puts a policy's inbound rules for this node in force; nil
// rules mean no policy (allow all). version names the policy for status.
func (f *Filter) SetRules(version string, rules []policy.Rule) {
	f.update(func(s *state) bool {
		s.version, s.rules = version, rules
		return true
	})
}

// SetPeer records the tags of the peer holding addrs (replacing what was
// known about those addresses).
func (f *Filter) SetPeer(addrs []netip.Addr, tags []string) {
	tags = slices.Clone(tags)
	f.update(func(s *state) bool {
		s.peerTags = cloneMap(s.peerTags)
		if s.access != nil {
			s.access = cloneMap(s.access)
		}
		for _, a := range addrs {
			s.peerTags[a.Unmap()] = tags
			if s.access != nil {
				s.access[a.Unmap()] = accessFor(s.rules, tags)
			}
		}
		return false
	})
}

// RemovePeer forgets the peer holding addrs.
func (f *Filter) RemovePeer(addrs []netip.Addr) {
	f.update(func(s *state) bool {
		s.peerTags = cloneMap(s.peerTags)
		if s.access != nil {
			s.access = cloneMap(s.access)
		}
		for _, a := range addrs {
			delete(s.peerTags, a.Unmap())
			delete(s.access, a.Unmap())
		}
		return false
	})
}

func cloneMap[V any](m map[netip.Addr]V) map[netip.Addr]V {
	out := make(map[netip.Addr]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetProtectedPorts sets the TCP ports on the node's mesh addresses that
// no peer may reach, whatever the policy: meshinit's own listeners.
func (f *Filter) SetProtectedPorts(ports []uint16) {
	ports = slices.Clone(ports)
	f.update(func(s *state) bool {
		s.protected = ports
		return false
	})
}

// ProtectedPort reports whether port is one of the protected TCP ports.
func (f *Filter) ProtectedPort(port uint16) bool {
	return slices.Contains(f.state.Load().protected, port)
}

// Stats is the filter's state for status and metrics.
type Stats struct {
	// PolicyVersion names the policy in force ("" without one).
	PolicyVersion string
	// Enforcing is true while a policy is in force.
	Enforcing bool
	// Drops counts dropped inbound packets by reason (Reason.String()).
	Drops map[string]uint64
	// Flows is the number of tracked outbound flows.
	Flows int
}

// Stats returns the counters.
func (f *Filter) Stats() Stats {
	s := f.state.Load()
	st := Stats{PolicyVersion: s.version, Enforcing: s.rules != nil, Drops: map[string]uint64{}, Flows: f.ct.len()}
	for r := range numReasons {
		st.Drops[r.String()] = f.drops[r].Load()
	}
	return st
}

func (f *Filter) isLocal(a netip.Addr) bool {
	for _, l := range f.local {
		if l == a {
			return true
		}
	}
	return false
}

// Inbound judges a packet arriving from the mesh. For Reject, it has
// written the answer to send back into reply (at least MaxRejectSize
// bytes) and returns its length. now is the current Unix time in seconds.
func (f *Filter) Inbound(pkt []byte, reply []byte, now int64) (Verdict, int) {
	h, ok := parse(pkt)
	if !ok {
		return f.drop(ReasonMalformed)
	}
	if !f.isLocal(h.dst) {
		return f.drop(ReasonNotLocal)
	}
	s := f.state.Load()
	if h.fragment {
		if s.rules == nil {
			return Pass, 0
		}
		return f.drop(ReasonFragment)
	}
	var key flowKey // the flow this packet would be a reply in
	switch h.proto {
	case protoTCP:
		key = flowKey{protoTCP, h.dst, h.src, h.dport, h.sport}
		if slices.Contains(s.protected, h.dport) {
			if f.ct.reply(key, now) {
				return Pass, 0
			}
			return f.refuse(ReasonOwnListener, pkt, &h, reply)
		}
	case protoUDP:
		key = flowKey{protoUDP, h.dst, h.src, h.dport, h.sport}
	case protoICMP, protoICMPv6:
		if s.rules == nil {
			return Pass, 0
		}
		switch {
		case isEchoRequest(&h):
			// judged by the rules below
		case isEcho(h.proto, h.icmpType):
			if f.ct.reply(flowKey{h.proto, h.dst, h.src, h.dport, h.sport}, now) {
				return Pass, 0
			}
			return f.drop(ReasonPolicy)
		case isICMPError(&h):
			// About a packet this node sent: pass if that flow is tracked.
			if e, ok := embedded(pkt, &h); ok && f.ct.reply(flowKey{e.proto, e.src, e.dst, e.sport, e.dport}, now) {
				return Pass, 0
			}
			return f.drop(ReasonPolicy)
		default:
			return f.drop(ReasonPolicy)
		}
	default:
		if s.rules == nil {
			return Pass, 0
		}
		return f.drop(ReasonPolicy)
	}
	if s.rules == nil {
		return Pass, 0
	}
	// A new flow the rules allow (checked first: it is the common case on a
	// server), or a reply to one this node opened.
	if access, known := s.access[h.src]; known {
		proto, port := policy.Proto(h.proto), h.dport
		if h.proto == protoICMP || h.proto == protoICMPv6 {
			port = 0
		}
		for _, r := range access {
			if r.Contains(proto, port) {
				return Pass, 0
			}
		}
		if h.proto != protoICMP && h.proto != protoICMPv6 && f.ct.reply(key, now) {
			return Pass, 0
		}
		return f.refuse(ReasonPolicy, pkt, &h, reply)
	}
	if f.ct.reply(key, now) {
		return Pass, 0
	}
	return f.refuse(ReasonUnknownPeer, pkt, &h, reply)
}

func (f *Filter) drop(r Reason) (Verdict, int) {
	f.drops[r].Add(1)
	return Drop, 0
}

// refuse drops pkt and, within the rate limit, builds the answer that
// makes the sender give up at once.
func (f *Filter) refuse(r Reason, pkt []byte, h *header, reply []byte) (Verdict, int) {
	f.drops[r].Add(1)
	if !f.rejectAllowed() {
		return Drop, 0
	}
	switch {
	case h.proto == protoTCP && h.tcpFlags&tcpRST == 0:
		return Reject, buildReset(reply, h)
	case h.proto == protoUDP || isEchoRequest(h):
		return Reject, buildUnreachable(reply, pkt, h)
	}
	return Drop, 0
}

// Refusals are rate limited: a peer that floods a closed door gets a
// bounded number of answers.
const (
	rejectRate  = 200 // per second
	rejectBurst = 100
)

func (f *Filter) rejectAllowed() bool {
	f.rejectMu.Lock()
	defer f.rejectMu.Unlock()
	now := time.Now()
	if !f.rejectAt.IsZero() {
		f.rejectTokens = min(rejectBurst, f.rejectTokens+now.Sub(f.rejectAt).Seconds()*rejectRate)
	}
	f.rejectAt = now
	if f.rejectTokens < 1 {
		return false
	}
	f.rejectTokens--
	return true
}

// Outbound records a packet this node sends into the mesh: a new TCP
// connection (SYN), a UDP datagram or an ICMP echo request opens a
// tracked flow whose replies Inbound lets in. Other packets cost a header
// check only. A new flow to an address that is neither this node's nor a
// peer's in the map (a node the policy keeps out of the map, or none at
// all) is refused at once: Outbound returns Reject with the answer, from
// that address, written into reply (a TCP reset or an ICMP port
// unreachable), for the caller to hand back to the node's own stack.
func (f *Filter) Outbound(pkt []byte, reply []byte, now int64) (Verdict, int) {
	if len(pkt) < 20 {
		return Pass, 0
	}
	// Fast path: TCP segments without SYN (the bulk of any transfer) need
	// no parsing beyond the protocol and flags.
	if v := pkt[0] >> 4; v == 4 {
		ihl := int(pkt[0]&0x0f) * 4
		if pkt[9] == protoTCP && len(pkt) > ihl+13 && pkt[ihl+13]&tcpSYN == 0 {
			return Pass, 0
		}
	} else if v == 6 && len(pkt) > 53 && pkt[6] == protoTCP && pkt[53]&tcpSYN == 0 {
		return Pass, 0
	}
	h, ok := parse(pkt)
	if !ok || h.fragment {
		return Pass, 0
	}
	var k flowKey
	switch h.proto {
	case protoTCP:
		if h.tcpFlags&(tcpSYN|tcpACK) != tcpSYN {
			return Pass, 0
		}
	case protoUDP:
	case protoICMP, protoICMPv6:
		if !isEchoRequest(&h) {
			return Pass, 0
		}
	default:
		return Pass, 0
	}
	k = flowKey{h.proto, h.src, h.dst, h.sport, h.dport}
	if _, known := f.state.Load().peerTags[h.dst]; !known && !f.isLocal(h.dst) {
		if h.proto == protoICMP || h.proto == protoICMPv6 || !f.rejectAllowed() {
			return Drop, 0
		}
		if h.proto == protoTCP {
			return Reject, buildReset(reply, &h)
		}
		return Reject, buildUnreachable(reply, pkt, &h)
	}
	f.ct.track(k, now)
	return Pass, 0
}
