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
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

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
func newForwarder(ns *netstack, log *slog.Logger) *forwarder {
	f := &forwarder{ns: ns, log: log, conns: make(map[net.Conn]struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	fw := tcp.NewForwarder(ns.stack, 0, forwardMaxInFlight, f.handle)
	ns.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if !f.allowed(id.LocalPort) {
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
	log    *slog.Logger
	ports  atomic.Pointer[map[uint16]bool] // nil pointer: forward nothing; nil map: all ports
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
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
	dctx, cancel := context.WithTimeout(f.ctx, forwardDialTimeout)
	var dialer net.Dialer
	lc, err := dialer.DialContext(dctx, "tcp", local.String())
	cancel()
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
