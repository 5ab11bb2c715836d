package dataplane

// Stats are counters of the userspace data plane, for diagnosing a slow
// tunnel: drops at the seam between netstack and WireGuard, and what TCP
// in the netstack did about loss. In TUN mode they are all zero (the
// kernel keeps its own: ip -s link, nstat).
type Stats struct {
	// OutboundDropped counts packets the netstack wanted to send while the
	// queue to WireGuard was full.
	OutboundDropped uint64
	// TCPSegmentsSent and TCPRetransmits are the netstack's TCP counters.
	TCPSegmentsSent uint64
	TCPRetransmits  uint64
	// TCPTimeouts counts retransmission timer expiries (the costly kind of
	// loss recovery).
	TCPTimeouts uint64
}

// Stats returns the data plane's counters.
func (d *Device) Stats() Stats {
	if d.ns == nil {
		return Stats{}
	}
	tcp := d.ns.stack.Stats().TCP
	return Stats{
		OutboundDropped: d.ns.link.droppedOutbound(),
		TCPSegmentsSent: tcp.SegmentsSent.Value(),
		TCPRetransmits:  tcp.Retransmits.Value(),
		TCPTimeouts:     tcp.Timeouts.Value(),
	}
}
