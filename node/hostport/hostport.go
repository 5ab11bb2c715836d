// Package hostport parses the NAME:PORT entries of meshinit's settings
// (MESH_WAIT_FOR, and the remote half of each MESH_CONNECT rule): a mesh
// name (a label such as "db", or a fully qualified name such as
// "db.mesh.internal") or an IP literal ("100.64.0.7", "[fd7a::7]"), then a
// TCP port.
//
// It checks syntax only. Whether a name belongs to a node of the mesh is
// decided when it is dialled, from the node's map at that moment.
package hostport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// HostPort is one parsed entry.
type HostPort struct {
	Host string // a name as written, or an IP literal without brackets
	Port uint16
}

// String is the entry as "host:port" ("[ipv6]:port"), ready to dial.
func (h HostPort) String() string {
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}

// Parse reads one "NAME:PORT" entry. The error says what is wrong with it;
// callers quote the entry and their setting's name around it.
func Parse(entry string) (HostPort, error) {
	host, port, err := net.SplitHostPort(entry)
	if err != nil {
		return HostPort{}, errors.New("want NAME:PORT, e.g. db:5432")
	}
	p, err := ParsePort(port)
	if err != nil {
		return HostPort{}, err
	}
	if host == "" {
		return HostPort{}, errors.New("no name before the port")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return HostPort{}, fmt.Errorf("%q: a mesh address has no zone", host)
		}
		return HostPort{Host: a.String(), Port: p}, nil
	}
	if strings.Contains(entry, "[") {
		return HostPort{}, fmt.Errorf("%q is not an IP address", host)
	}
	if !ValidName(host) {
		return HostPort{}, fmt.Errorf("%q is not a valid name (letters, digits, '-' and '_' in dot-separated labels of up to 63 bytes)", host)
	}
	return HostPort{Host: host, Port: p}, nil
}

// ParsePort reads a TCP port, 1 to 65535.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (want 1 to 65535)", s)
	}
	return uint16(n), nil
}

// ValidName reports whether name is a host name a mesh node could have:
// dot-separated labels of 1 to 63 letters, digits, '-' or '_', at most 253
// bytes, an optional final dot.
func ValidName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Entries splits a comma-separated setting into its entries, trimmed of
// spaces. An empty setting has none; an empty entry in the middle (",,")
// is kept as "" so the caller reports it.
func Entries(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// ParseList parses a comma-separated list of NAME:PORT entries (the value
// of MESH_WAIT_FOR). The error quotes the first bad entry.
func ParseList(s string) ([]HostPort, error) {
	var out []HostPort
	for _, e := range Entries(s) {
		hp, err := Parse(e)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", e, err)
		}
		out = append(out, hp)
	}
	return out, nil
}
