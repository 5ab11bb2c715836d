package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

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
	return &kernelTUN{name: real, index: ifc.Index, dev: dev}, nil
}

// configure assigns the mesh addresses, routes the mesh prefixes into the
// interface and brings it up.
func (k *kernelTUN) configure(addrs []netip.Addr, prefixes []netip.Prefix, mtu int) error {
	if len(prefixes) == 0 {
		return fmt.Errorf("TUN interface %s: no mesh prefixes to route into it (the coordinator's registration gives them)", k.name)
	}
	nl, err := openRTNL()
	if err != nil {
		return fmt.Errorf("TUN interface %s: %w", k.name, err)
	}
	defer nl.close()
	for _, a := range addrs {
		if err := nl.addAddress(k.index, a.Unmap()); err != nil {
			return fmt.Errorf("TUN interface %s: %w", k.name, err)
		}
	}
	if err := nl.linkUp(k.index); err != nil {
		return fmt.Errorf("TUN interface %s: %w", k.name, err)
	}
	for _, p := range prefixes {
		if err := nl.addRoute(k.index, p); err != nil {
			return fmt.Errorf("TUN interface %s: %w", k.name, err)
		}
	}
	return nil
}
