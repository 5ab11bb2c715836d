package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// LocalEndpoints lists the device's UDP port on each usable host address,
// IPv4 first: the candidates the node reports to the coordinator. Loopback
// addresses are left out when any other address exists, and included when
// they are all there is (a test on one host, a container without network).
// Link-local IPv6 addresses are left out: they need a zone to be reached.
// The mesh addresses of a TUN device are never candidates.
func (d *Device) LocalEndpoints() ([]netip.AddrPort, error) {
	port := d.ListenPort()
	if port == 0 {
		return nil, errors.New("local endpoints: the UDP port is not open")
	}
	skipIface := ""
	if d.ktun != nil {
		skipIface = d.ktun.name
	}
	return HostEndpoints(port, skipIface, d.isMeshAddress)
}

// HostEndpoints lists port on each usable address of the host's interfaces
// that are up, with the rules of LocalEndpoints, leaving out the interface
// named skipIface and any address for which skip returns true (either may
// be empty/nil). The node uses it to register the endpoints its device will
// have before the device exists.
func HostEndpoints(port uint16, skipIface string, skip func(netip.Addr) bool) ([]netip.AddrPort, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("local endpoints: listing interfaces: %w", err)
	}
	var addrs, loopback []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || (skipIface != "" && ifc.Name == skipIface) {
			continue
		}
		ias, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		for _, ia := range ias {
			pfx, err := netip.ParsePrefix(ia.String())
			if err != nil {
				continue
			}
			a := pfx.Addr().Unmap()
			switch {
			case a.IsLoopback():
				loopback = append(loopback, a)
			case a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() || (skip != nil && skip(a)):
			default:
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		addrs = loopback
	}
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() && !b.Is4():
			return -1
		case !a.Is4() && b.Is4():
			return 1
		}
		return 0
	})
	addrs = slices.Compact(addrs)
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a, port))
	}
	if len(out) == 0 {
		return nil, errors.New("local endpoints: the host has no usable address, not even loopback")
	}
	return out, nil
}

func (d *Device) isMeshAddress(a netip.Addr) bool {
	return slices.Contains(d.addrs, a)
}
