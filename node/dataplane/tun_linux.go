package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/tun"
)

// kernelTUN is the TUN-mode inside of the device: a kernel interface that
// carries the mesh addresses, with the mesh prefixes routed into it. It
// lives as long as its file descriptor, which the WireGuard device owns and
// closes; the kernel then removes the interface with its addresses and
// routes, so nothing is left behind even if the process dies.
type kernelTUN struct {
	name  string
	index int
	dev   tun.Device
	// ipv6Off says why the interface carries no IPv6 ("" when it does).
	ipv6Off string
}

func createKernelTUN(name string, mtu int) (*kernelTUN, error) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, fmt.Errorf("TUN mode needs /dev/net/tun (docker run --device /dev/net/tun): %w", err)
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("creating TUN interface %s: %w (TUN mode needs CAP_NET_ADMIN: docker run --cap-add NET_ADMIN; or use MESH_NET=userspace)", name, err)
		}
		return nil, fmt.Errorf("creating TUN interface %s: %w (TUN mode needs CAP_NET_ADMIN and /dev/net/tun; or use MESH_NET=userspace)", name, err)
	}
	real, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("TUN interface name: %w", err)
	}
	ifc, err := net.InterfaceByName(real)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("TUN interface %s: %w", real, err)
	}
	return &kernelTUN{name: real, index: ifc.Index, dev: dev, ipv6Off: ipv6Off("/proc/sys/net", real)}, nil
}

// carried is the part of the node's addresses the interface can carry:
// all of them, or only the IPv4 ones where IPv6 is disabled for it (as
// Docker leaves a container on a network without IPv6): the node is then
// IPv4-only. None at all is an error.
func (k *kernelTUN) carried(addrs []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() || k.ipv6Off == "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("TUN interface %s: IPv6 is disabled here (%s) and the mesh gave this node no IPv4 address", k.name, k.ipv6Off)
	}
	return out, nil
}

// configure assigns addrs (see carried), brings the interface up and routes
// the mesh prefixes into it, leaving out the IPv6 ones where IPv6 is
// disabled. Each step is one bounded netlink exchange, and an error names
// the step.
func (k *kernelTUN) configure(addrs []netip.Addr, prefixes []netip.Prefix) error {
	if len(prefixes) == 0 {
		return fmt.Errorf("TUN interface %s: no mesh prefixes to route into it (the coordinator's registration gives them)", k.name)
	}
	nl, err := openRTNL()
	if err != nil {
		return fmt.Errorf("TUN interface %s: %w", k.name, err)
	}
	defer nl.close()
	for _, a := range addrs {
		if err := nl.addAddress(k.index, a); err != nil {
			return fmt.Errorf("TUN interface %s: %w", k.name, err)
		}
	}
	if err := nl.linkUp(k.index); err != nil {
		return fmt.Errorf("TUN interface %s: %w", k.name, err)
	}
	for _, p := range prefixes {
		if p.Addr().Is6() && k.ipv6Off != "" {
			continue
		}
		if err := nl.addRoute(k.index, p); err != nil {
			return fmt.Errorf("TUN interface %s: %w", k.name, err)
		}
	}
	return nil
}

// TUNIPv6Off says, before the TUN interface exists, why it will not be
// able to carry IPv6, or "" when it will: a node then registers without
// IPv6 (no_ipv6), so that the mesh never gives it an address nobody can
// reach. name is the interface's ("" for DefaultTUNName). A new interface
// takes its setting from net.ipv6.conf.default (which writing "all" sets
// too, as Docker does); one that exists already (a persistent TUN) keeps
// its own.
func TUNIPv6Off(name string) string { return tunIPv6Off("/proc/sys/net", name) }

func tunIPv6Off(sysNet, name string) string {
	if name == "" {
		name = DefaultTUNName
	}
	if _, err := os.Stat(filepath.Join(sysNet, "ipv6", "conf", name)); err == nil {
		return ipv6Off(sysNet, name)
	}
	return ipv6Off(sysNet, "default")
}

// ipv6Off says why the interface cannot carry IPv6, or "" when it can:
// the kernel has no IPv6 (booted with ipv6.disable=1: sysNet has no ipv6
// directory), or net.ipv6.conf.<name>.disable_ipv6 is 1. The interface's own
// setting is what the kernel checks when an address or route is added; a
// new interface takes it from net.ipv6.conf.default. When nothing can be
// read (no /proc/sys) IPv6 is tried: a refusal then fails the start,
// naming the step. sysNet is /proc/sys/net.
func ipv6Off(sysNet, name string) string {
	b, err := os.ReadFile(filepath.Join(sysNet, "ipv6", "conf", name, "disable_ipv6"))
	if err == nil {
		if strings.TrimSpace(string(b)) != "0" {
			return "net.ipv6.conf." + name + ".disable_ipv6=1"
		}
		return ""
	}
	if _, err := os.Stat(sysNet); err == nil {
		if _, err := os.Stat(filepath.Join(sysNet, "ipv6")); errors.Is(err, fs.ErrNotExist) {
			return "the kernel has no IPv6 (ipv6.disable=1)"
		}
	}
	return ""
}
