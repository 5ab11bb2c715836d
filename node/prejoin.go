package node

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"github.com/meshinit/meshinit/node/dataplane"
)

// Registering with endpoints. A node registers before its device exists
// (the device needs the addresses registration hands out), yet peers learn
// of it from that registration. Had it no endpoints then, a peer that dials
// it in the next few milliseconds would stage its first packet for a peer
// without an address; WireGuard would then wait a whole rekey timeout (5 s)
// before it tried the handshake again. So the node picks its UDP port
// first and registers the endpoints the device will have on that port.
// Once the device is up its own LocalEndpoints are reported if they differ.

// pickUDPPort finds a port free for both UDP over IPv4 and IPv6, as the
// device's bind opens both.
func pickUDPPort() (int, error) {
	var lastErr error
	for range 10 {
		c4, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			return 0, err
		}
		port := c4.LocalAddr().(*net.UDPAddr).Port
		c6, err := net.ListenUDP("udp6", &net.UDPAddr{Port: port})
		c4.Close()
		if err == nil {
			c6.Close()
			return port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return port, nil // no IPv6 here: the bind will use IPv4 only
		}
		lastErr = err
	}
	return 0, lastErr
}

// candidates are the endpoints to register for port.
func (n *Node) candidates(port int) []netip.AddrPort {
	if n.endpointsFor != nil {
		return n.endpointsFor(port)
	}
	return hostEndpoints(port)
}

// hostEndpoints lists port on each usable host address, with the device's
// own rules (dataplane.HostEndpoints); nil when there is none.
func hostEndpoints(port int) []netip.AddrPort {
	if port <= 0 || port > 65535 {
		return nil
	}
	eps, err := dataplane.HostEndpoints(uint16(port), "", nil)
	if err != nil {
		return nil
	}
	return eps
}
