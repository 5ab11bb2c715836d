package node

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/meshinit/meshinit/node/dataplane"
)

// Status reports the node for "meshinit status": who it is, its link to
// the coordinator, and each peer with what the tunnel saw of it.
func (n *Node) Status() ctlsock.Status {
	n.mu.Lock()
	s := ctlsock.Status{
		State: n.state, ID: uint64(n.self.ID), Name: n.self.Name, FQDN: n.self.FQDN,
		IPv4: n.self.IPv4, IPv6: n.self.IPv6, Ephemeral: n.self.Ephemeral,
		Net: n.cfg.Mode.String(), Proxy: n.proxyAddr,
		Endpoints: slices.Clone(n.endpoints),
	}
	peers := make([]meshapi.Peer, 0, len(n.peers))
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	dp := n.dp
	if n.policy != nil {
		s.Policy.Version, s.Policy.Rules = n.policy.Version, len(n.policy.Rules)
	}
	n.mu.Unlock()
	s.Policy.Drops = map[string]uint64{}
	if dp != nil {
		fs := dp.FilterStats()
		s.Policy.Enforcing, s.Policy.Drops, s.Policy.Flows = fs.Enforcing, fs.Drops, fs.Flows
	}

	ms := n.client.MapStatus()
	s.Coordinator = ctlsock.CoordinatorStatus{
		URL: n.client.URL(), State: string(ms.State), Since: ms.Since, LastError: ms.LastError,
		Reconnects: ms.Reconnects, MapVersion: ms.Version,
	}
	if s.Endpoints == nil {
		s.Endpoints = []netip.AddrPort{}
	}
	tunnel := map[meshapi.Key]int{}
	var dps []dataplane.PeerStatus
	if dp != nil {
		dps = dp.Peers()
		for i, p := range dps {
			tunnel[p.PublicKey] = i
		}
	}
	s.Peers = make([]ctlsock.PeerStatus, 0, len(peers))
	for _, p := range peers {
		ps := ctlsock.PeerStatus{ID: uint64(p.ID), Name: p.Name, FQDN: p.FQDN, IPv4: p.IPv4, IPv6: p.IPv6, Online: p.Online}
		if i, ok := tunnel[p.PublicKey]; ok {
			t := dps[i]
			if t.Endpoint.IsValid() {
				ps.Endpoint = t.Endpoint.String()
			}
			ps.Path, ps.PathReason = t.Path.Kind, t.Path.Reason
			ps.LastHandshake, ps.RxBytes, ps.TxBytes = t.LastHandshake, t.RxBytes, t.TxBytes
		}
		s.Peers = append(s.Peers, ps)
	}
	if dp != nil {
		if rs, ok := dp.Relay(); ok {
			s.Relay = &ctlsock.RelayStatus{State: rs.State, Since: rs.Since, Kind: rs.Kind, LastError: rs.LastError,
				Connects: rs.Reconnects, Dropped: rs.Dropped}
		}
	}
	slices.SortFunc(s.Peers, func(a, b ctlsock.PeerStatus) int { return cmp.Compare(a.Name, b.Name) })
	return s
}
