package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

// Mode selects what sits inside the WireGuard device.
type Mode int

const (
	// Userspace runs a gVisor TCP/IP stack inside the process. It needs no
	// privileges; apps reach the mesh through Device.DialContext (the local
	// proxy) and inbound connections are forwarded to 127.0.0.1.
	Userspace Mode = iota
	// TUN creates a kernel TUN interface carrying the mesh addresses and a
	// route for the mesh prefixes. It needs CAP_NET_ADMIN and /dev/net/tun.
	TUN
)

func (m Mode) String() string {
	switch m {
	case Userspace:
		return "userspace"
	case TUN:
		return "tun"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses the MESH_NET values "userspace" and "tun".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "userspace":
		return Userspace, nil
	case "tun":
		return TUN, nil
	}
	return 0, fmt.Errorf("network mode %q: want \"userspace\" (no privileges) or \"tun\" (needs NET_ADMIN and /dev/net/tun)", s)
}

// DefaultMTU is the inner MTU of the tunnel. 1280 is the IPv6 minimum: the
// encapsulated packets (MTU + 80 bytes of IPv6/UDP/WireGuard overhead) then
// fit through any underlay with a 1360-byte MTU or more, which covers nested
// overlays and PPPoE paths where WireGuard's usual 1420 would fragment.
// With segmentation offload between the netstack and the device the MTU
// matters little for speed; docs/dataplane.md has the measurements.
const DefaultMTU = 1280

// DefaultTUNName is the kernel interface name used when Config.TUNName is empty.
const DefaultTUNName = "mesh0"

// Config describes one device. Only PrivateKey and Addresses are required.
type Config struct {
	// PrivateKey is the node's WireGuard private key. It never leaves memory:
	// it is handed to the device once and is neither logged nor stored.
	PrivateKey [32]byte
	// ListenPort is the UDP port; 0 picks a free one.
	ListenPort int
	// Addresses are this node's mesh addresses (an IPv4 and an IPv6).
	Addresses []netip.Addr
	// Prefixes are the mesh ranges; in TUN mode each gets a route into the
	// interface.
	Prefixes []netip.Prefix
	// MTU of the tunnel; 0 means DefaultMTU.
	MTU int
	// Mode is Userspace (default) or TUN.
	Mode Mode
	// TUNName is the interface name in TUN mode; "" means DefaultTUNName.
	TUNName string
	// Log receives one line per event; nil discards.
	Log *slog.Logger
	// Relay, when set, connects the device to the coordinator's relay: peers
	// are reached through it from the first packet, and over direct UDP
	// once a probe validated a path.
	Relay *RelayConfig
	// AdvertiseEndpoints, when set, replaces LocalEndpoints as the list of
	// our own endpoints sent to peers in call-me-maybe (tests keep
	// everything on loopback with it).
	AdvertiseEndpoints func(port uint16) []netip.AddrPort
}

// validate checks cfg and fills in defaults in place.
func (cfg *Config) validate() error {
	var errs []error
	if cfg.PrivateKey == ([32]byte{}) {
		errs = append(errs, errors.New("private key is all zeros: generate one with GeneratePrivateKey"))
	}
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen port %d: want 0 (any) to 65535", cfg.ListenPort))
	}
	if len(cfg.Addresses) == 0 {
		errs = append(errs, errors.New("no mesh addresses: the node needs its IPv4 and/or IPv6 from the coordinator"))
	}
	for _, a := range cfg.Addresses {
		if !a.IsValid() || a.IsUnspecified() || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("mesh address %v: want a plain unicast IPv4 or IPv6 address", a))
		}
	}
	for _, p := range cfg.Prefixes {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("mesh prefix %v is not valid", p))
		}
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > 65535-80 {
		errs = append(errs, fmt.Errorf("MTU %d: want 576 to %d", cfg.MTU, 65535-80))
	}
	if cfg.Addresses != nil && hasV6(cfg.Addresses) && cfg.MTU < 1280 {
		errs = append(errs, fmt.Errorf("MTU %d is below 1280, the minimum IPv6 needs, and an IPv6 mesh address is set", cfg.MTU))
	}
	switch cfg.Mode {
	case Userspace, TUN:
	default:
		errs = append(errs, fmt.Errorf("unknown mode %v", cfg.Mode))
	}
	if cfg.TUNName == "" {
		cfg.TUNName = DefaultTUNName
	}
	if len(cfg.TUNName) > 15 {
		errs = append(errs, fmt.Errorf("interface name %q: Linux allows at most 15 characters", cfg.TUNName))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if len(errs) > 0 {
		return fmt.Errorf("dataplane config: %w", errors.Join(errs...))
	}
	return nil
}

func hasV6(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Is6() && !a.Is4In6() {
			return true
		}
	}
	return false
}
