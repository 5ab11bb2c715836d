// Package packetfilter decides, packet by packet, what a mesh node lets in
// from its WireGuard peers: the inbound half of the access policy, and the
// rule that no peer ever reaches meshinit's own listeners.
//
// It sits at the boundary between wireguard-go and the node's inside (the
// netstack in userspace mode, the kernel TUN in TUN mode), so both modes
// apply the same rules. WireGuard has already authenticated the source
// address (a peer's packets must come from its allowed IPs), so the source
// address names the peer, and the peer's tags come from the map.
//
// Decisions, in order, for a packet arriving from the mesh:
//
//  1. malformed, or not addressed to one of the node's own mesh addresses:
//     dropped (a TUN node must never route a peer's packet onward);
//  2. a reply to a flow this node opened (connection tracking): passes;
//  3. a TCP packet to one of the node's protected ports (its proxy and
//     health listeners): refused with a reset, whatever the policy says;
//  4. no policy: passes;
//  5. a new TCP connection, UDP flow or ICMP echo that a rule allows for
//     the source peer's tags: passes;
//  6. anything else is refused: TCP with a reset, UDP with an ICMP "port
//     unreachable", ICMP echo with "administratively prohibited", the rest dropped silently.
//
// Refusals are answered (rate limited) so that a client fails at once
// instead of retrying for minutes. Allowed inbound flows are not tracked:
// every packet of them is checked again, so a policy change applies to
// established flows at once too. Outbound flows are tracked from their
// first packet (TCP SYN, UDP datagram, ICMP echo) in a bounded table.
package packetfilter
