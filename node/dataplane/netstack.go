package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const nicID tcpip.NICID = 1

// TCP buffer sizes of the netstack. gVisor's defaults (1 MiB, growing to
// 4 MiB) keep a single flow below the bandwidth-delay product of a fast
// path; receive-buffer moderation grows them only for flows that need it,
// so idle and slow connections stay small.
const (
	tcpBufferMin     = 4 << 10
	tcpBufferDefault = 1 << 20
	tcpBufferMax     = 8 << 20
)

// netstack is the userspace TCP/IP stack behind the WireGuard device.
type netstack struct {
	stack *stack.Stack
	link  *netstackLink
	addrs []netip.Addr
}

func newNetstack(addrs []netip.Addr, mtu int) (*netstack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// A node may dial its own mesh address; deliver that locally.
		HandleLocal: true,
	})
	ns := &netstack{stack: s, link: newNetstackLink(mtu), addrs: addrs}
	if err := ns.configure(); err != nil {
		s.Close()
		ns.link.Close()
		return nil, err
	}
	return ns, nil
}

func (ns *netstack) configure() error {
	s := ns.stack
	opts := []tcpip.SettableTransportProtocolOption{
		ptr(tcpip.TCPSACKEnabled(true)),
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufferMin, Default: tcpBufferDefault, Max: tcpBufferMax},
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufferMin, Default: tcpBufferDefault, Max: tcpBufferMax},
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("netstack TCP option %T: %v", o, err)
		}
	}
	if err := s.CreateNIC(nicID, ns.link); err != nil {
		return fmt.Errorf("netstack: creating the interface: %v", err)
	}
	var v4, v6 bool
	for _, a := range ns.addrs {
		proto := ipv4.ProtocolNumber
		if a.Is6() && !a.Is4In6() {
			proto, v6 = ipv6.ProtocolNumber, true
		} else {
			a, v4 = a.Unmap(), true
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("netstack: adding address %v: %v", a, err)
		}
	}
	// Everything not local goes into the tunnel; WireGuard's allowed IPs
	// decide which peer, and drop what belongs to none.
	if v4 {
		s.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if v6 {
		s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func (ns *netstack) close() {
	ns.stack.Close()
	ns.stack.Wait()
	ns.link.Close()
}

// fullAddr converts an address to gVisor's form.
func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	a := ap.Addr().Unmap()
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: ap.Port()}, proto
}

// dial opens a TCP or UDP connection from the netstack into the mesh.
func (ns *netstack) dial(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(ap)
	switch network {
	case "tcp", "tcp4", "tcp6":
		c, err := gonet.DialContextTCP(ctx, ns.stack, fa, proto)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "udp", "udp4", "udp6":
		c, err := gonet.DialUDP(ns.stack, nil, &fa, proto)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, net.UnknownNetworkError(network)
}

// parseDialAddress parses the address of a dial into the mesh: a literal
// IP and a port. Names are resolved by the caller (the node knows the mesh
// names; the data plane knows only addresses).
func parseDialAddress(network, address string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dial %s %q: want ip:port: %w", network, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dial %s %q: the mesh data plane needs an IP address, not a name (resolve mesh names first)", network, address)
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("dial %s %q: zoned addresses do not exist in the mesh", network, address)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("dial %s %q: port must be 1-65535", network, address)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
