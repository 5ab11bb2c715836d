package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/localfwd"
	"github.com/meshinit/meshinit/node/waitfor"
)

// Reaching peers by name without a proxy: local forwarders (MESH_CONNECT),
// waiting for peers before the app starts (MESH_WAIT_FOR), and in TUN mode
// the DNS resolver and resolv.conf (dns.go). All of them resolve names from the node's
// name table, which the map stream keeps: a peer resolves as soon as it is
// in the map and stops when it leaves it.

// localAccess is what the node runs for apps on its own host.
type localAccess struct {
	fwd *localfwd.Forwarders
	dns *dnsAccess // TUN mode with MESH_DNS on
}

// ErrNotInMesh is DialMesh's error for a destination that is not a node of
// this node's map.
var ErrNotInMesh = errors.New("not a node of the mesh (not in this node's map)")

// openLocal claims the local ports (forwarders, resolver) before the node
// joins, so that a taken port fails the start at once and names the port.
func (n *Node) openLocal() error {
	var l localAccess
	if len(n.cfg.Connect) > 0 {
		f, err := localfwd.Listen(n.cfg.Connect)
		if err != nil {
			return localError(StageLocal, err)
		}
		l.fwd = f
	}
	if n.cfg.DNS && n.cfg.Mode == dataplane.TUN {
		d, err := openDNS(n.cfg, &n.names)
		if err != nil {
			l.close()
			return localError(StageLocal, err)
		}
		l.dns = d
	}
	n.mu.Lock()
	if n.closed {
		// Close ran while Start was still going (the stop deadline).
		n.mu.Unlock()
		l.close()
		return &StartError{Stage: StageLocal, Kind: KindInterrupted, Err: errors.New("node closed while starting")}
	}
	n.local = l
	n.mu.Unlock()
	return nil
}

// serveLocal starts what openLocal claimed, once the node is in the mesh.
func (n *Node) serveLocal() error {
	n.mu.Lock()
	l := n.local
	n.mu.Unlock()
	if l.fwd != nil {
		// Serving after a concurrent Close is harmless: its listeners are
		// closed, so the accept loops end at once.
		l.fwd.Serve(n.DialMesh, n.cfg.Log)
		n.log.Info("local forwarders listening", "rules", fmt.Sprint(n.cfg.Connect))
	}
	if l.dns != nil {
		n.mu.Lock()
		domain, noIPv6 := n.domain, n.noIPv6
		n.mu.Unlock()
		// Apps here have no route to an IPv6 mesh address: they get none.
		l.dns.srv.SetIPv4Only(noIPv6)
		if err := l.dns.start(domain); err != nil {
			return localError(StageLocal, err)
		}
	}
	return nil
}

// waitForPeers holds Start until every MESH_WAIT_FOR peer answers.
func (n *Node) waitForPeers(ctx context.Context) error {
	if len(n.cfg.WaitFor) == 0 {
		return nil
	}
	n.log.Info("waiting for peers before starting the command", "peers", fmt.Sprint(n.cfg.WaitFor))
	err := waitfor.Wait(ctx, n.DialMesh, n.cfg.WaitFor, n.cfg.Log)
	if err == nil {
		return nil
	}
	kind := KindPeersSilent
	if errors.Is(ctx.Err(), context.Canceled) {
		kind = KindInterrupted
	}
	return &StartError{Stage: StageWaitFor, Kind: kind, Err: err}
}

// closeLocal stops the forwarders and the resolver, putting resolv.conf
// back first. Call it once n.closed is set.
func (n *Node) closeLocal() error {
	n.mu.Lock()
	l := n.local
	n.local = localAccess{}
	n.mu.Unlock()
	return l.close()
}

func (l localAccess) close() error {
	var errs []error
	if l.dns != nil {
		errs = append(errs, l.dns.close())
	}
	if l.fwd != nil {
		errs = append(errs, l.fwd.Close())
	}
	return errors.Join(errs...)
}

// DialMesh connects to a node of the mesh only: the host of address must be
// a mesh name in this node's map (short or fully qualified) or a mesh
// address. Anything else fails at once with ErrNotInMesh, and is never
// looked up or dialled on the normal network.
func (n *Node) DialMesh(ctx context.Context, network, address string) (net.Conn, error) {
	addr, port, mesh, err := n.resolveDest(address)
	if err != nil {
		return nil, err
	}
	if !mesh {
		host, _, _ := net.SplitHostPort(address)
		return nil, fmt.Errorf("%s: %w", host, ErrNotInMesh)
	}
	return n.dialMeshAddr(ctx, network, addr, port)
}

// resolveDest splits "host:port" and resolves host from the name table:
// mesh is true for a mesh node (addr is then its address); an unknown name
// under the mesh domain is an error.
func (n *Node) resolveDest(address string) (addr netip.Addr, port string, mesh bool, err error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.Addr{}, "", false, fmt.Errorf("dial %s: %w", address, err)
	}
	addr, mesh, err = n.names.Resolve(host)
	return addr, port, mesh, err
}

// dialMeshAddr dials a mesh address through the tunnel.
func (n *Node) dialMeshAddr(ctx context.Context, network string, addr netip.Addr, port string) (net.Conn, error) {
	n.mu.Lock()
	dp := n.dp
	n.mu.Unlock()
	address := net.JoinHostPort(addr.String(), port)
	if dp == nil {
		return nil, fmt.Errorf("dial %s: this node is not in the mesh (logged out or not up yet)", address)
	}
	return dp.DialContext(ctx, network, address)
}
