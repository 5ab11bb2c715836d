package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Proto is an IP protocol number.
type Proto uint8

// The protocols a grant can name.
const (
	ProtoICMP   Proto = 1
	ProtoTCP    Proto = 6
	ProtoUDP    Proto = 17
	ProtoICMPv6 Proto = 58
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP, ProtoICMPv6:
		return "icmp"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// PortRange allows Proto on ports First..Last (both 0 for ICMP, which has
// no ports).
type PortRange struct {
	Proto       Proto
	First, Last uint16
}

// Contains reports whether the range allows port of proto. ICMPv4 and
// ICMPv6 are one: "icmp" allows both.
func (r PortRange) Contains(proto Proto, port uint16) bool {
	if proto == ProtoICMPv6 {
		proto = ProtoICMP
	}
	return r.Proto == proto && port >= r.First && port <= r.Last
}

func (r PortRange) String() string {
	switch {
	case r.Proto == ProtoICMP:
		return "icmp"
	case r.First == 0 && r.Last == 65535:
		return r.Proto.String() + ":*"
	case r.First == r.Last:
		return fmt.Sprintf("%s:%d", r.Proto, r.First)
	}
	return fmt.Sprintf("%s:%d-%d", r.Proto, r.First, r.Last)
}

// AllPorts is what "*" allows: every port of TCP and UDP, and ICMP.
var AllPorts = []PortRange{{ProtoTCP, 0, 65535}, {ProtoUDP, 0, 65535}, {ProtoICMP, 0, 0}}

// ParsePortSpec reads one entry of a grant's "ip": "*", "icmp",
// "tcp:443", "tcp:8000-8999", "tcp:80,443", "tcp:*", and the same for udp.
// A protocol is required: "443" alone is refused.
func ParsePortSpec(s string) ([]PortRange, error) {
	switch s {
	case "*":
		return append([]PortRange(nil), AllPorts...), nil
	case "icmp":
		return []PortRange{{ProtoICMP, 0, 0}}, nil
	}
	protoName, ports, ok := strings.Cut(s, ":")
	var proto Proto
	switch protoName {
	case "tcp":
		proto = ProtoTCP
	case "udp":
		proto = ProtoUDP
	default:
		if !ok {
			return nil, fmt.Errorf("%q: name the protocol: \"tcp:%s\", \"udp:%s\", \"icmp\" or \"*\"", s, s, s)
		}
		return nil, fmt.Errorf("%q: protocol %q: want tcp, udp or icmp", s, protoName)
	}
	if !ok || ports == "" {
		return nil, fmt.Errorf("%q: name the ports: \"%s:443\", \"%s:80,443\", \"%s:8000-8999\" or \"%s:*\"", s, protoName, protoName, protoName, protoName)
	}
	if ports == "*" {
		return []PortRange{{proto, 0, 65535}}, nil
	}
	var out []PortRange
	for _, part := range strings.Split(ports, ",") {
		first, last, isRange := strings.Cut(part, "-")
		lo, err := parsePort(first)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = parsePort(last); err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("%q: range %s ends before it starts", s, part)
			}
		}
		out = append(out, PortRange{proto, lo, hi})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return uint16(n), nil
}
