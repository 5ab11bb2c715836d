package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/meshinit/meshinit/node/dataplane/packetfilter"
	"github.com/meshinit/meshinit/node/proxy"
)

// forwardDialTimeout bounds the local dial for one forwarded connection.
const forwardDialTimeout = 5 * time.Second

// forwardMaxInFlight bounds connections in the middle of being set up (SYN
// received, local dial not done); further SYNs are dropped and retried by
// the client, as a full listen backlog would.
const forwardMaxInFlight = 512

// Forward makes connections that arrive from the mesh at this node's mesh
// address on port P go to 127.0.0.1:P, for the ports listed (nil means all
// ports). A port with no local listener answers with a reset, as a closed
// port would. Calling Forward again replaces the port set.
//
// In TUN mode the kernel delivers such connections to local listeners
// itself, so Forward does nothing there.
func (d *Device) Forward(ports []uint16) error {
	if d.forward == nil {
		return nil
	}
	if d.isClosed() {
		return errors.New("forward: device is closed")
	}
	set := portSet(ports)
	d.forward.ports.Store(&set)
	d.log.Info("forwarding inbound connections to 127.0.0.1", "ports", describePorts(ports))
	return nil
}

// newForwarder installs the netstack's handler for connections to ports
// nobody listens on in the netstack. It must be installed before traffic
// flows (gVisor does not synchronise changing it), so it exists from the
// start and forwards nothing until Forward gives it ports.
func newForwarder(ns *netstack, filter *packetfilter.Filter, log *slog.Logger) *forwarder {
	f := &forwarder{ns: ns, filter: filter, log: log, conns: make(map[net.Conn]struct{}), dialed: make(map[uint16]struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	fw := tcp.NewForwarder(ns.stack, 0, forwardMaxInFlight, f.handle)
	ns.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if !f.allowed(id.LocalPort) || filter.ProtectedPort(id.LocalPort) {
			return false // the stack answers with a reset
		}
		return fw.HandlePacket(id, pkt)
	})
	return f
}

// portSet is nil for "all ports".
func portSet(ports []uint16) map[uint16]bool {
	if ports == nil {
		return nil
	}
	set := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		set[p] = true
	}
	return set
}

func describePorts(ports []uint16) string {
	if ports == nil {
		return "all"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// forwarder carries connections from the netstack to local listeners.
type forwarder struct {
	ns     *netstack
	filter *packetfilter.Filter // knows the ports never to forward to
	log    *slog.Logger
	ports  atomic.Pointer[map[uint16]bool] // nil pointer: forward nothing; nil map: all ports
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	// dialed holds the local ports of our connections to 127.0.0.1: a
	// local server seeing one of them as its client's port knows the
	// connection came from the mesh (see Device.FromMesh).
	dialed map[uint16]struct{}
}

func (f *forwarder) allowed(port uint16) bool {
	set := f.ports.Load()
	return set != nil && (*set == nil || (*set)[port])
}

// handle runs in its own goroutine per incoming SYN. It dials the local
// port first, so that a closed local port is answered with a reset instead
// of an accepted connection that dies at once.
func (f *forwarder) handle(r *tcp.ForwarderRequest) {
	if !f.track(1) {
		r.Complete(true)
		return
	}
	defer f.wg.Done()
	id := r.ID()
	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), id.LocalPort)
	if f.filter.ProtectedPort(id.LocalPort) {
		r.Complete(true) // never into meshinit's own listeners
		return
	}
	dctx, cancel := context.WithTimeout(f.ctx, forwardDialTimeout)
	var lport uint16
	dialer := net.Dialer{Control: f.bindAndRecord(&lport)}
	lc, err := dialer.DialContext(dctx, "tcp", local.String())
	cancel()
	if lport != 0 {
		defer f.forget(lport)
	}
	if err != nil {
		f.log.Debug("forward: local dial failed, resetting", "port", id.LocalPort, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		f.log.Debug("forward: accepting from the mesh failed", "port", id.LocalPort, "err", terr.String())
		r.Complete(true)
		lc.Close()
		return
	}
	r.Complete(false)
	mc := gonet.NewTCPConn(&wq, ep)
	if !f.add(mc, lc) {
		mc.Close()
		lc.Close()
		return
	}
	proxy.Relay(mc, lc)
	f.remove(mc, lc)
}

// track registers a handler goroutine unless the forwarder is closing.
func (f *forwarder) track(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(n)
	return true
}

func (f *forwarder) add(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) remove(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// close ends every forwarded connection and waits for their goroutines.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// bindAndRecord binds the socket of a forwarded connection to a local port
// before it connects, and records the port (in *port and f.dialed), so the
// local server can never see the connection before we know its port.
func (f *forwarder) bindAndRecord(port *uint16) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.Bind(int(fd), &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); serr != nil {
				return
			}
			sa, err := unix.Getsockname(int(fd))
			if err != nil {
				serr = err
				return
			}
			if in4, ok := sa.(*unix.SockaddrInet4); ok {
				*port = uint16(in4.Port)
				f.mu.Lock()
				f.dialed[*port] = struct{}{}
				f.mu.Unlock()
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

func (f *forwarder) forget(port uint16) {
	f.mu.Lock()
	delete(f.dialed, port)
	f.mu.Unlock()
}

// fromMesh reports whether a local connection whose client is at remote is
// one the forwarder made for a peer.
func (f *forwarder) fromMesh(remote netip.AddrPort) bool {
	if !remote.Addr().Unmap().IsLoopback() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.dialed[remote.Port()]
	return ok
}

// FromMesh reports whether a connection a local server accepted from
// remote was forwarded from the mesh (userspace mode; in TUN mode such a
// connection has a mesh source address, so this is true for those too).
// meshinit's proxy refuses these: a peer must never use it.
func (d *Device) FromMesh(remote netip.AddrPort) bool {
	a := remote.Addr().Unmap()
	for _, own := range d.addrs {
		if own.Unmap() == a {
			return false // this node itself, dialing its own mesh address
		}
	}
	if d.forward != nil && d.forward.fromMesh(remote) {
		return true
	}
	for _, p := range d.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
