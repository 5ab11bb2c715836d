package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.zx2c4.com/wireguard/conn"
)

// maxCandidates bounds how many addresses one peer's packets are copied to
// while it has no confirmed endpoint.
const maxCandidates = 8

// parseCandidates parses "ip:port[,ip:port...]" (at most maxCandidates, no
// duplicates). It is the inverse of formatCandidates.
func parseCandidates(s string) ([]netip.AddrPort, error) {
	if s == "" {
		return nil, errors.New("endpoint list is empty")
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxCandidates {
		return nil, fmt.Errorf("endpoint list has %d entries: at most %d are tried", len(parts), maxCandidates)
	}
	out := make([]netip.AddrPort, 0, len(parts))
	seen := make(map[netip.AddrPort]bool, len(parts))
	for _, p := range parts {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return nil, fmt.Errorf("endpoint %q: want ip:port or [ipv6]:port: %w", p, err)
		}
		if err := checkEndpoint(ap); err != nil {
			return nil, err
		}
		if seen[ap] {
			return nil, fmt.Errorf("endpoint %v is listed twice", ap)
		}
		seen[ap] = true
		out = append(out, ap)
	}
	return out, nil
}

// checkEndpoint rejects addresses a UDP packet cannot be sent to.
func checkEndpoint(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case ap.Port() == 0:
		return fmt.Errorf("endpoint %v: port 0", ap)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("endpoint %v: not a unicast address", ap)
	case a.Zone() != "":
		return fmt.Errorf("endpoint %v: zoned (link-local) addresses are not supported", ap)
	}
	return nil
}

// formatCandidates writes the candidate list the way parseCandidates reads it.
func formatCandidates(addrs []netip.AddrPort) string {
	var sb strings.Builder
	for i, a := range addrs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(a.String())
	}
	return sb.String()
}

// candidateEndpoint is a peer endpoint that is still a list of guesses;
// meshBind.Send copies every packet to each of them.
type candidateEndpoint struct {
	addrs []netip.AddrPort
	cands []conn.Endpoint // the inner bind's endpoints, same order as addrs
}

func (e *candidateEndpoint) ClearSrc() {
	for _, c := range e.cands {
		c.ClearSrc()
	}
}
func (e *candidateEndpoint) SrcToString() string { return "" }
func (e *candidateEndpoint) DstToString() string { return formatCandidates(e.addrs) }
func (e *candidateEndpoint) DstToBytes() []byte  { return e.cands[0].DstToBytes() }
func (e *candidateEndpoint) DstIP() netip.Addr   { return e.addrs[0].Addr() }
func (e *candidateEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }
