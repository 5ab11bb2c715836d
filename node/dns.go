package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/meshinit/meshinit/node/dnsserver"
	"github.com/meshinit/meshinit/node/nametable"
	"github.com/meshinit/meshinit/node/resolvconf"
)

// DefaultDNSAddr is where the mesh resolver listens in TUN mode. Not
// 127.0.0.53, which systemd-resolved holds on hosts where a container may
// share the host's network; port 53 because resolv.conf cannot name another.
const DefaultDNSAddr = "127.0.0.153:53"

// dnsAccess is the mesh resolver and the resolv.conf that points at it
// (TUN mode, MESH_DNS=on). Its own lock orders start against close: Close
// may run while Start is still going, and a resolv.conf installed after the
// restore would never be put back.
type dnsAccess struct {
	log  *slog.Logger
	file *resolvconf.File
	srv  *dnsserver.Server
	ip   netip.Addr

	mu     sync.Mutex
	closed bool
	inst   *resolvconf.Installed
}

// dnsError says what failed and how to run without it.
func dnsError(err error) error {
	return fmt.Errorf("MESH_DNS: %w (set MESH_DNS=off to leave resolv.conf alone)", err)
}

// openDNS reads the original resolv.conf and starts the resolver, which
// forwards to the original's nameservers. resolv.conf is not touched yet.
func openDNS(cfg Config, names *nametable.Table) (*dnsAccess, error) {
	path := cfg.ResolvConf
	if path == "" {
		path = resolvconf.DefaultPath
	}
	addr := cfg.DNSAddr
	if addr == "" {
		addr = DefaultDNSAddr
	}
	listen, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, dnsError(err)
	}
	f, err := resolvconf.Load(path)
	if err != nil {
		return nil, dnsError(err)
	}
	log := cfg.Log.With("component", "dns")
	ups := upstreams(f.Config, listen.Addr())
	if len(ups) == 0 {
		log.Warn("resolv.conf lists no nameserver but the mesh resolver itself: names outside the mesh will not resolve", "path", path)
	}
	srv, err := dnsserver.Listen(addr, dnsserver.Config{Names: names, Upstreams: ups, Log: log})
	if err != nil {
		return nil, dnsError(fmt.Errorf("resolver: %w", err))
	}
	if f.Recovered {
		log.Warn("resolv.conf still held meshinit's version (an earlier meshinit was killed); using the original kept in it", "path", path)
	}
	return &dnsAccess{log: log, file: f, srv: srv, ip: listen.Addr()}, nil
}

// upstreams are the original nameservers on port 53, without the mesh
// resolver itself (a loop). With none listed, libc asks the local host, and
// so does the resolver.
func upstreams(c resolvconf.Config, self netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range c.Nameservers {
		if a != self {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	if len(c.Nameservers) == 0 {
		out = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("[::1]:53")}
	}
	return out
}

// start points resolv.conf at the resolver, with domain searched first.
func (d *dnsAccess) start(domain string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("node closed while starting")
	}
	inst, err := d.file.Install(d.ip, domain)
	if err != nil {
		return dnsError(err)
	}
	d.inst = inst
	d.log.Info("resolv.conf points at the mesh resolver", "path", d.file.Path, "resolver", d.srv.Addr().String(),
		"search", domain, "upstreams", fmt.Sprint(upstreams(d.file.Config, d.ip)))
	return nil
}

// close restores resolv.conf, then stops the resolver (meshinit's own last
// lookups, the logout's, still had it).
func (d *dnsAccess) close() error {
	d.mu.Lock()
	d.closed = true
	inst := d.inst
	d.inst = nil
	d.mu.Unlock()
	var err error
	if inst != nil {
		if err = inst.Restore(); err != nil {
			d.log.Warn("resolv.conf not restored", "err", err)
		} else {
			d.log.Info("resolv.conf restored", "path", d.file.Path)
		}
	}
	return errors.Join(err, d.srv.Close())
}
