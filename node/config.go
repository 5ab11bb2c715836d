package node

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/localfwd"
)

// DefaultProxyAddr is where the local proxy listens unless MESH_PROXY says
// otherwise.
const DefaultProxyAddr = "127.0.0.1:1055"

// Config describes one node. Coordinator, AuthKey and Hostname are
// required.
type Config struct {
	// Coordinator is the meshcoord URL, or a comma-separated list of the
	// URLs of replicas of one mesh (MESH_COORDINATOR).
	Coordinator string
	// CoordinatorCAs, when not nil, are the only certificate authorities an
	// https Coordinator's certificate may chain to (MESH_COORDINATOR_CA: a
	// private CA); nil means the system's roots.
	CoordinatorCAs *x509.CertPool
	// AuthKey is the secret auth key (MESH_AUTHKEY or the content of
	// MESH_AUTHKEY_FILE). It is sent once, to register, and never logged.
	AuthKey string
	// Hostname is the name the node asks for (MESH_HOSTNAME, default the
	// container's hostname).
	Hostname string
	// Mode is the data plane: Userspace (netstack + proxy) or TUN.
	Mode dataplane.Mode
	// ProxyAddr is the local SOCKS5+HTTP proxy's listen address; "" turns
	// the proxy off (MESH_PROXY=off). Port 0 picks a free port (the child's
	// environment carries the real one). Userspace mode only.
	ProxyAddr string
	// Forward says which inbound ports on the mesh address are forwarded to
	// 127.0.0.1 (MESH_FORWARD). Userspace mode only.
	Forward Forward
	// OwnPorts are TCP ports of meshinit's own listeners besides the proxy
	// (the health port): no peer may reach them, whatever the policy and
	// Forward say. The proxy's port is added by the node itself.
	OwnPorts []uint16
	// ListenPort is the WireGuard UDP port; 0 picks a free one.
	ListenPort int
	// Connect are local forwarders into the mesh (MESH_CONNECT): Start
	// listens on 127.0.0.1:LOCAL for each before it joins, and serves them
	// once the node is up. Both modes.
	Connect []localfwd.Rule
	// WaitFor are peers that must accept a TCP connection over the mesh
	// before Start returns (MESH_WAIT_FOR), within Start's context.
	WaitFor []hostport.HostPort
	// DNS runs the mesh resolver and points resolv.conf at it while the
	// node runs (MESH_DNS, on by default). TUN mode only: in userspace mode
	// mesh addresses have no route, so names would not help.
	DNS bool
	// ResolvConf is the file DNS rewrites; "" means /etc/resolv.conf.
	ResolvConf string
	// DNSAddr is where the resolver listens; "" means DefaultDNSAddr.
	DNSAddr string
	// Log receives one line per event; nil discards.
	Log *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if urls, err := controlclient.ParseCoordinatorList(c.Coordinator); err != nil {
		errs = append(errs, err)
	} else if c.CoordinatorCAs != nil {
		for _, u := range urls {
			if u.Scheme != "https" {
				errs = append(errs, fmt.Errorf("a coordinator CA is set (MESH_COORDINATOR_CA) but the coordinator address %s is not https: the CA only serves to check a TLS certificate; use https://", u.Redacted()))
			}
		}
	}
	if c.AuthKey == "" {
		errs = append(errs, errors.New("no auth key: set MESH_AUTHKEY or MESH_AUTHKEY_FILE"))
	}
	if strings.TrimSpace(c.Hostname) == "" {
		errs = append(errs, errors.New("no hostname: set MESH_HOSTNAME"))
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("WireGuard listen port %d: want 0..65535", c.ListenPort))
	}
	return errors.Join(errs...)
}

// Forward is the set of inbound ports forwarded from the node's mesh
// address to 127.0.0.1.
type Forward struct {
	All   bool
	Ports []uint16 // sorted, unique; ignored when All
}

// Enabled reports whether anything is forwarded.
func (f Forward) Enabled() bool { return f.All || len(f.Ports) > 0 }

func (f Forward) String() string {
	switch {
	case f.All:
		return "all"
	case len(f.Ports) == 0:
		return "none"
	}
	s := make([]string, len(f.Ports))
	for i, p := range f.Ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// ParseForward parses MESH_FORWARD: "all", "" or "none"/"off" (nothing), or
// a comma-separated list of ports ("80,443").
func ParseForward(s string) (Forward, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "all":
		return Forward{All: true}, nil
	case "", "none", "off":
		return Forward{}, nil
	}
	var f Forward
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.ParseUint(part, 10, 16)
		if err != nil || n == 0 {
			return Forward{}, fmt.Errorf("forward %q: %q is not a port (want \"all\" or a list such as 80,443)", s, part)
		}
		f.Ports = append(f.Ports, uint16(n))
	}
	slices.Sort(f.Ports)
	f.Ports = slices.Compact(f.Ports)
	return f, nil
}
