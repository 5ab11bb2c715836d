package dataplane

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane/packetfilter"
)

// Device is a running WireGuard device with its inside (netstack or kernel
// TUN). All methods are safe for concurrent use.
type Device struct {
	mode  Mode
	pub   meshapi.Key // this node's public key
	mtu   int
	addrs []netip.Addr
	// prefixes are the mesh ranges.
	prefixes []netip.Prefix
	log      *slog.Logger

	wg   *device.Device
	bind *meshBind
	ns   *netstack  // Userspace mode only
	ktun *kernelTUN // TUN mode only

	mu      sync.Mutex
	closed  bool
	peers   map[meshapi.Key][]netip.AddrPort // candidate endpoints last configured per peer
	forward *forwarder                       // Userspace mode only

	// filter judges every packet from the mesh (filter.go), in both modes.
	filter  *packetfilter.Filter
	peerIPs map[meshapi.Key][]netip.Addr // each peer's addresses, for the filter
}

// New creates the device, opens its UDP port and brings it up. In TUN mode
// it also creates the interface, assigns the mesh addresses and routes the
// mesh prefixes into it.
func New(cfg Config) (*Device, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pub, err := PublicKey(cfg.PrivateKey)
	if err != nil {
		return nil, err
	}
	d := &Device{
		pub:      pub,
		mode:     cfg.Mode,
		mtu:      cfg.MTU,
		addrs:    append([]netip.Addr(nil), cfg.Addresses...),
		prefixes: append([]netip.Prefix(nil), cfg.Prefixes...),
		log:      cfg.Log.With("component", "dataplane"),
		peers:    make(map[meshapi.Key][]netip.AddrPort),
	}
	if cfg.Mode == TUN {
		if err := d.openKernelTUN(cfg); err != nil {
			return nil, err
		}
	}
	d.filter = packetfilter.New(d.addrs)
	d.peerIPs = make(map[meshapi.Key][]netip.Addr)
	var tdev tun.Device
	switch cfg.Mode {
	case Userspace:
		ns, err := newNetstack(d.addrs, cfg.MTU)
		if err != nil {
			return nil, err
		}
		d.ns = ns
		tdev = newFilteredTUN(ns.link.asTUN(), d.filter, ns.link.inject)
		d.forward = newForwarder(ns, d.filter, d.log)
	case TUN:
		it := &injectingTUN{Device: d.ktun.dev}
		tdev = newFilteredTUN(it, d.filter, it.inject)
	}
	d.bind, err = d.newBind(cfg)
	if err != nil {
		d.closeInside()
		return nil, err
	}
	d.wg = device.NewDevice(tdev, d.bind, wgLogger(cfg.Log))

	// The key goes to the device in this one string, which is never logged
	// and whose error messages never quote it.
	uapi := fmt.Sprintf("private_key=%s\nlisten_port=%d\n", hex.EncodeToString(cfg.PrivateKey[:]), cfg.ListenPort)
	if err := d.wg.IpcSet(uapi); err != nil {
		d.abort()
		return nil, fmt.Errorf("configuring WireGuard device: %w", err)
	}
	if err := d.wg.Up(); err != nil {
		d.abort()
		return nil, fmt.Errorf("bringing WireGuard device up (UDP port %d): %w", cfg.ListenPort, err)
	}
	// The interface goes up only now: the WireGuard device takes the link's
	// up event as a request to come up, which must not race the
	// configuration above.
	if d.ktun != nil {
		if err := d.ktun.configure(d.addrs, d.prefixes); err != nil {
			d.abort()
			return nil, err
		}
	}
	if d.bind.relay != nil {
		d.bind.relay.start()
	}
	d.log.Info("data plane up", "mode", d.mode.String(), "udp_port", d.bind.port.Load(), "mtu", d.mtu, "addresses", d.addrs,
		"relay", d.bind.relay != nil)
	return d, nil
}

// openKernelTUN creates the TUN interface (New configures it once the
// WireGuard device is up). Where IPv6 is disabled the interface will carry
// only the IPv4 address: d.addrs says so from here on (the packet filter
// takes it as the node's own addresses), and one line is logged.
func (d *Device) openKernelTUN(cfg Config) error {
	kt, err := createKernelTUN(cfg.TUNName, cfg.MTU)
	if err != nil {
		return err
	}
	carried, err := kt.carried(d.addrs)
	if err != nil {
		kt.dev.Close() // removes the interface
		return err
	}
	if kt.ipv6Off != "" {
		var left []netip.Addr
		for _, a := range d.addrs {
			if !slices.Contains(carried, a.Unmap()) {
				left = append(left, a)
			}
		}
		// left is empty when the node registered without IPv6 (no_ipv6), as
		// meshinit's node does where it saw this coming.
		attrs := []any{"interface", kt.name, "why", kt.ipv6Off}
		if len(left) > 0 {
			attrs = append(attrs, "not_configured", left)
		}
		d.log.Info("IPv6 is disabled here: the TUN interface carries the IPv4 mesh address only", attrs...)
	}
	d.ktun, d.addrs = kt, carried
	return nil
}

// closeInside closes the netstack or the kernel TUN of a device whose
// WireGuard device was never made (which would otherwise close it).
func (d *Device) closeInside() {
	if d.ns != nil {
		d.ns.close()
	}
	if d.ktun != nil {
		d.ktun.dev.Close()
	}
}

// abort tears down a half-built device.
func (d *Device) abort() {
	d.bind.shutdown()
	d.wg.Close() // closes the bind and the TUN side
	if d.ns != nil {
		d.ns.close()
	}
}

// PublicKey is this node's WireGuard public key.
func (d *Device) PublicKey() meshapi.Key { return d.pub }

// Mode reports whether the device runs on a netstack or a kernel TUN.
func (d *Device) Mode() Mode { return d.mode }

// MTU is the tunnel's inner MTU.
func (d *Device) MTU() int { return d.mtu }

// Addresses are the mesh addresses the device carries: the configured
// ones, without IPv6 on a TUN interface where IPv6 is disabled.
func (d *Device) Addresses() []netip.Addr { return append([]netip.Addr(nil), d.addrs...) }

// ListenPort is the UDP port the device is bound to.
func (d *Device) ListenPort() uint16 { return uint16(d.bind.port.Load()) }

// TUNName is the kernel interface name in TUN mode, "" in userspace mode.
func (d *Device) TUNName() string {
	if d.ktun == nil {
		return ""
	}
	return d.ktun.name
}

// DialContext opens a connection into the mesh. address must be a literal
// IP and port ("100.64.0.2:80", "[fd7a::2]:80"): mesh names are resolved by
// the caller. network is "tcp", "tcp4", "tcp6", "udp", "udp4" or "udp6".
// In TUN mode it is a plain dial; the kernel routes it into the interface.
func (d *Device) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := parseDialAddress(network, address)
	if err != nil {
		return nil, err
	}
	if d.isClosed() {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, net.ErrClosed)
	}
	if d.ns == nil {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, ap.String())
	}
	c, err := d.ns.dial(ctx, network, ap)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	return c, nil
}

func (d *Device) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close stops forwarding, closes the device and its UDP port, and removes
// the netstack or the kernel interface (with its addresses and routes).
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()

	if d.forward != nil {
		d.forward.close()
	}
	// Closing the device closes the TUN side too; for a kernel TUN that
	// removes the interface with its addresses and routes.
	d.bind.shutdown()
	d.wg.Close()
	if d.ns != nil {
		d.ns.close()
	}
	d.log.Info("data plane down")
	return nil
}
