package dataplane

import (
	"net/netip"
	"testing"
	"time"
)

// TestPathTimers walks one peer through the path rules on an injected
// clock: relay first, probes only while it carries traffic, direct after a
// pong, heartbeats on the direct path, back to the relay after two missed
// heartbeats, and nothing at all once idle.
func TestPathTimers(t *testing.T) {
	b := &meshBind{}
	p := &peerPath{ok: true, pings: map[[txIDLen]byte]sentPing{}, punched: map[netip.AddrPort]time.Time{},
		mapAddrs: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.2:41641")}}
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	plan := func(d time.Duration) (probeAction, bool) { return b.planProbe(p, at(d), true) }
	route := func(d time.Duration) string {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.routeLocked(at(d), relayUp).kind
	}

	if _, ok := plan(0); ok {
		t.Fatal("an idle peer was probed")
	}
	if r := route(0); r != PathRelay {
		t.Fatalf("first route %s, want relay", r)
	}
	p.lastSend = t0 // traffic starts
	if a, ok := plan(0); !ok || len(a.ping) != 1 || !a.callMeMaybe {
		t.Fatalf("first probe round: %+v %v, want a ping per candidate and a call-me-maybe", a, ok)
	}
	if _, ok := plan(probeInterval - time.Millisecond); ok {
		t.Error("probed again before probeInterval")
	}
	if _, ok := plan(probeInterval); !ok {
		t.Error("no probe round after probeInterval")
	}

	// A pong at 5.1 s: direct, trusted for trustDuration.
	to := p.mapAddrs[0]
	p.mu.Lock()
	p.pongLocked(sentPing{to: to, at: at(probeInterval)}, at(probeInterval+100*time.Millisecond))
	p.mu.Unlock()
	direct := probeInterval + 100*time.Millisecond
	if r := route(direct); r != PathDirect {
		t.Fatalf("after a pong the route is %s, want direct", r)
	}
	p.lastSend = at(direct)
	if a, ok := plan(direct + heartbeatInterval); !ok || len(a.ping) != 1 || a.ping[0] != to || a.callMeMaybe {
		t.Errorf("heartbeat: %+v %v, want one ping on the direct path", a, ok)
	}
	if r := route(direct + trustDuration - time.Millisecond); r != PathDirect {
		t.Errorf("direct path dropped before trustDuration")
	}
	// No pong since: trust runs out, back to the relay, probing resumes.
	p.lastSend = at(direct + trustDuration)
	if r := route(direct + trustDuration); r != PathRelay {
		t.Errorf("after trustDuration without a pong the route is %s, want relay", r)
	}
	if a, ok := plan(direct + trustDuration); !ok || !a.callMeMaybe {
		t.Errorf("no probe round after the direct path was lost: %+v %v", a, ok)
	}
	p.mu.Lock()
	st := p.statusLocked(at(direct+trustDuration), relayUp)
	p.mu.Unlock()
	if st.Kind != PathRelay || st.Reason != "the direct path stopped answering probes" {
		t.Errorf("status %+v", st)
	}
	// Idle: nothing.
	if _, ok := plan(direct + trustDuration + activeTimeout); ok {
		t.Error("a peer idle for activeTimeout was probed")
	}
}
