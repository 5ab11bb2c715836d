package node

import (
	"net/netip"
	"strconv"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/nametable"
	"github.com/meshinit/meshinit/policy"
)

// follow runs the map stream until the node leaves, and reports how it
// ended on followEnd.
func (n *Node) follow() {
	var m controlclient.NetMap
	err := n.client.Follow(n.runCtx, &m, n.onMap, controlclient.FollowOptions{})
	if controlclient.IsLoggedOut(err) {
		n.removedByCoordinator(err)
	}
	n.followEnd <- err
}

// onMap applies one change of the map to the name table and, once it is
// up, to the device: peer by peer, never a full reload. What it has to log
// is logged after n.mu is released.
func (n *Node) onMap(c controlclient.Change, m *controlclient.NetMap) {
	logs := &logAfter{}
	defer logs.writeTo(n.log) // deferred first, so it runs after the unlock
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logout != nil || n.closed {
		return
	}
	if c.PolicyChanged {
		n.policy = m.Policy
		if n.dp != nil {
			n.applyPolicyLocked(n.dp, logs)
		}
	}
	// The proxy resolves names without n.mu: a name must never point at a
	// peer the device does not have yet (its first SYN would be dropped and
	// retried only a second later), so the device is updated first on the
	// way in and last on the way out.
	for _, p := range c.Upserted {
		old, known := n.peers[p.ID]
		n.peers[p.ID] = p
		if n.dp != nil {
			if known && old.PublicKey != p.PublicKey {
				// a re-keyed peer is a different WireGuard peer
				n.dpRemoveLocked(old, logs)
			}
			if err := n.dp.UpsertPeer(dataplanePeer(p)); err != nil {
				logs.warn("updating peer failed", "peer", p.Name, "err", err)
			} else if !known {
				logs.info("peer joined", "peer", p.Name, "ipv4", p.IPv4)
			}
		}
		n.names.Upsert(entryOf(p))
	}
	for _, id := range c.Removed {
		old, known := n.peers[id]
		if !known {
			continue
		}
		delete(n.peers, id)
		n.names.Remove(id)
		if n.dp != nil {
			n.dpRemoveLocked(old, logs)
			logs.info("peer left", "peer", old.Name)
		}
	}
	if c.SelfChanged {
		n.self, n.domain, n.prefixes = m.Self, m.Domain, m.Prefixes
		if c.Full {
			// Domain or ranges may have changed: rebuild the table whole (it
			// is a map in memory; the device is still updated per peer).
			entries := []nametable.Entry{entryOf(m.Self.Peer())}
			for _, p := range m.Peers {
				entries = append(entries, entryOf(p))
			}
			n.names.Reset(m.Domain, m.Prefixes, entries)
		} else {
			n.names.Upsert(entryOf(m.Self.Peer()))
		}
	}
	for _, pr := range c.Presence {
		if p, ok := n.peers[pr.ID]; ok {
			p.Online, p.LastSeen = pr.Online, pr.LastSeen
			n.peers[pr.ID] = p
		}
	}
	if c.Full && !n.gotMap {
		n.gotMap = true
		close(n.firstMap)
	}
}

func (n *Node) dpRemoveLocked(p meshapi.Peer, logs *logAfter) {
	if err := n.dp.RemovePeer(p.PublicKey); err != nil {
		logs.warn("removing peer failed", "peer", p.Name, "err", err)
	}
}

// removedByCoordinator handles a map stream refused for good: the node was
// deleted or expired by an admin, collected, or replaced. It leaves the
// mesh locally; the child keeps running.
func (n *Node) removedByCoordinator(err error) {
	n.mu.Lock()
	if n.logout != nil || n.closed {
		n.mu.Unlock()
		return
	}
	n.logout = &ctlsock.LogoutResult{Deleted: true}
	takeDown := n.leaveLocked()
	n.mu.Unlock()
	n.log.Warn("the coordinator removed this node from the mesh; the app keeps running without it", "err", err)
	takeDown()
}

// leaveLocked takes the node out of the mesh locally: state logged out and
// no device for dials. The name table stays as it was (map changes are
// ignored from now on), so a mesh name or address the app still asks for
// resolves as a mesh one and fails in Dial ("not in the mesh") instead of
// going to the normal network: a mesh name into the DNS, a mesh address
// (100.64.0.0/10) out of the host's own interfaces.
//
// In TUN mode the kernel routes the app's packets, so the same rule needs the
// interface: it stays, with its addresses and its route for the mesh ranges,
// but without peers, until Close. A packet to a mesh address then ends in the
// device (no peer has that address) instead of following the default route
// onto the underlay network. In userspace mode the device is closed at once.
//
// n.mu must be held; the caller runs the returned takeDown after unlocking.
func (n *Node) leaveLocked() (takeDown func()) {
	n.state = ctlsock.StateLoggedOut
	dp := n.dp
	n.dp = nil
	switch {
	case dp == nil:
		return func() {}
	case dp.Mode() == dataplane.TUN:
		n.parked = dp
		return func() {
			for _, p := range dp.Peers() {
				if err := dp.RemovePeer(p.PublicKey); err != nil {
					n.log.Warn("removing a peer after logout", "err", err)
				}
			}
		}
	default:
		return func() { dp.Close() }
	}
}

func entryOf(p meshapi.Peer) nametable.Entry {
	return nametable.Entry{ID: p.ID, Name: p.Name, IPv4: p.IPv4, IPv6: p.IPv6}
}

// dataplanePeer is what the device needs of a peer: its key, its mesh
// addresses as /32 and /128, and its candidate endpoints.
func dataplanePeer(p meshapi.Peer) dataplane.Peer {
	var allowed []netip.Prefix
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		if a.IsValid() {
			allowed = append(allowed, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return dataplane.Peer{PublicKey: p.PublicKey, AllowedIPs: allowed, Endpoints: p.Endpoints, Tags: p.Tags}
}

// applyPolicyLocked hands the node's inbound rules to the device. Rules
// that do not parse (a newer coordinator's syntax) are left out, which
// denies what they would have allowed: failing closed. n.mu is held; the
// lines go to logs.
func (n *Node) applyPolicyLocked(dev *dataplane.Device, logs *logAfter) {
	if n.policy == nil {
		dev.SetPolicy("", nil)
		logs.info("no access policy: every peer may connect")
		return
	}
	rules := make([]policy.Rule, 0, len(n.policy.Rules))
	for _, wr := range n.policy.Rules {
		r, err := policy.ParseRule(wr.Src, wr.IP)
		if err != nil {
			logs.warn("ignoring an inbound rule this node cannot read", "src", wr.Src, "ip", wr.IP, "err", err)
			continue
		}
		rules = append(rules, r)
	}
	dev.SetPolicy(strconv.FormatUint(n.policy.Version, 10), rules)
	logs.info("access policy in force", "version", n.policy.Version, "inbound_rules", len(rules))
}
