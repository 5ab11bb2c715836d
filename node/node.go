package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/nametable"
)

// Node is one mesh node. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	client *controlclient.Client
	names  nametable.Table

	// lifetime of the background work (map stream, endpoint reports)
	runCtx    context.Context
	runCancel context.CancelFunc
	bg        sync.WaitGroup

	regDone   chan struct{} // closed when Start's registration returned
	firstMap  chan struct{} // closed when the first full map is applied
	followEnd chan error    // receives Follow's result once

	// logoutLock serialises Logout (the control socket's and the stop
	// path's may race) and is taken with a ctx: a logout held up by another
	// one gives up at its own deadline instead of waiting for the other's.
	logoutLock chan struct{}

	mu       sync.Mutex
	state    string // ctlsock.State*
	started  bool
	self     meshapi.Node
	domain   string
	prefixes []netip.Prefix
	peers    map[meshapi.NodeID]meshapi.Peer
	policy   *meshapi.NodePolicy // as the map gives it; nil: none
	gotMap   bool
	dp       *dataplane.Device // nil until up, and again after logout
	// noIPv6: the device carries no IPv6 address (TUN mode where IPv6 is
	// disabled: the node registered with no_ipv6). The app is then told no
	// IPv6 address, and the resolver gives mesh names no AAAA records.
	noIPv6 bool
	// parked is a TUN device after logout: kept, without peers, until Close
	// (see leaveLocked).
	parked    *dataplane.Device
	proxy     proxyServer
	proxyAddr string // the real listen address, "" when off
	endpoints []netip.AddrPort
	logout    *ctlsock.LogoutResult // set once logged out
	closed    bool
	// endpointsFor, when set (tests), replaces the host's addresses as the
	// node's candidate endpoints on a port: tests keep all traffic on
	// loopback with it.
	endpointsFor func(port int) []netip.AddrPort
	// cancelStart cancels Start's context: Logout uses it when it cannot
	// wait for a registration any longer.
	cancelStart context.CancelFunc
	// local is what apps on this host reach peers by name with (local.go);
	// set by Start, released by Close.
	local localAccess
}

// New checks cfg and returns a node that has not joined yet.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mesh configuration: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	log := cfg.Log.With("component", "node")
	client, err := controlclient.New(cfg.Coordinator, controlclient.Options{Logger: cfg.Log.With("component", "control"), RootCAs: cfg.CoordinatorCAs})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		log:        log,
		client:     client,
		regDone:    make(chan struct{}),
		logoutLock: make(chan struct{}, 1),
		firstMap:   make(chan struct{}),
		followEnd:  make(chan error, 1),
		state:      ctlsock.StateStarting,
		peers:      map[meshapi.NodeID]meshapi.Peer{},
	}
	n.runCtx, n.runCancel = context.WithCancel(context.Background())
	return n, nil
}

// Start joins the mesh: register, first map, device up with every peer,
// endpoints reported, proxy listening. ctx bounds all of it. On error the
// node may be registered already: call Logout (meshinit's stop path does)
// and Close. The error says which step failed; see StartError.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.started || n.closed {
		n.mu.Unlock()
		return errors.New("node: Start called twice or after Close")
	}
	if n.logout != nil {
		n.mu.Unlock()
		return &StartError{Stage: StageConfig, Kind: KindInterrupted, Err: errors.New("logged out before starting")}
	}
	n.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.cancelStart = cancel
	n.mu.Unlock()

	begin := time.Now()
	registering := true
	defer func() {
		if registering {
			close(n.regDone)
		}
	}()
	if err := n.openLocal(); err != nil {
		return err
	}
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		return localError(StageConfig, err)
	}
	defer clear(priv[:])
	pub, err := dataplane.PublicKey(priv)
	if err != nil {
		return localError(StageConfig, err)
	}

	// Register with the endpoints the device will have (see prejoin.go).
	port := n.cfg.ListenPort
	if port == 0 {
		if port, err = pickUDPPort(); err != nil {
			n.log.Debug("no free UDP port found in advance; registering without endpoints", "err", err)
			port = 0
		}
	}
	eps := n.candidates(port)
	reg, err := n.client.Register(ctx, controlclient.Registration{
		AuthKey: n.cfg.AuthKey, Hostname: n.cfg.Hostname, PublicKey: pub, Endpoints: eps,
		NoIPv6: n.registersWithoutIPv6(),
	})
	registering = false
	close(n.regDone)
	if err != nil {
		return classifyStartError(ctx, StageRegister, n.client.URL(), err)
	}
	registered := time.Now()
	n.mu.Lock()
	n.self, n.domain, n.prefixes = reg.Node, reg.Domain, reg.Prefixes
	if len(eps) > 0 {
		n.endpoints = eps
	}
	leaving := n.logout != nil || n.closed
	n.mu.Unlock()
	if leaving {
		// Logout was called meanwhile and waits for this registration to
		// log it out; there is nothing more to start.
		return &StartError{Stage: StageRegister, Kind: KindInterrupted, Err: errors.New("logged out while starting")}
	}

	// The map stream and the device come up side by side.
	if !n.goBackground(n.follow) {
		return &StartError{Stage: StageMap, Kind: KindInterrupted, Err: errors.New("logged out while starting")}
	}
	devCfg := dataplane.Config{
		PrivateKey: priv, // a copy: Start clears its own when it returns
		ListenPort: port,
		Addresses:  validAddrs(reg.Node.IPv4, reg.Node.IPv6),
		Prefixes:   reg.Prefixes,
		Mode:       n.cfg.Mode,
		Log:        n.cfg.Log,
		// Peers are reached through the coordinator's relay from the first
		// packet, and directly once a path is validated.
		Relay: &dataplane.RelayConfig{WatchURL: n.client.WatchURL, Authorization: n.client.Authorization,
			TLS: &tls.Config{RootCAs: n.cfg.CoordinatorCAs, MinVersion: tls.VersionTLS12}},
	}
	if n.endpointsFor != nil {
		devCfg.AdvertiseEndpoints = func(port uint16) []netip.AddrPort { return n.endpointsFor(int(port)) }
	}
	devCh := make(chan devResult, 1)
	go func(cfg dataplane.Config) {
		defer clear(cfg.PrivateKey[:])
		dev, err := dataplane.New(cfg)
		if err != nil && n.cfg.ListenPort == 0 && port != 0 && errors.Is(err, syscall.EADDRINUSE) {
			// Someone took the port we picked: any port will do, the
			// endpoint report below corrects what we registered.
			cfg.ListenPort = 0
			dev, err = dataplane.New(cfg)
		}
		devCh <- devResult{dev, err}
	}(devCfg)
	clear(devCfg.PrivateKey[:])
	var dev *dataplane.Device
	select {
	case r := <-devCh:
		if r.err != nil {
			return localError(StageDevice, r.err)
		}
		dev = r.dev
	case <-ctx.Done():
		go closeWhenReady(devCh)
		return classifyStartError(ctx, StageDevice, n.client.URL(), ctx.Err())
	}
	if err := n.waitFirstMap(ctx); err != nil {
		dev.Close()
		return classifyStartError(ctx, StageMap, n.client.URL(), err)
	}
	gotMap := time.Now()

	// Before any peer is added, so that no peer ever reaches them.
	n.mu.Lock()
	own := slices.Clone(n.cfg.OwnPorts)
	n.mu.Unlock()
	dev.ProtectPorts(own)
	if err := n.attach(dev); err != nil {
		dev.Close()
		return &StartError{Stage: StageDevice, Kind: KindInterrupted, Err: err}
	}
	// meshinit's own listeners are closed to peers before anything is
	// forwarded: the proxy must start first so that its port is known.
	if n.cfg.Mode == dataplane.Userspace && n.cfg.ProxyAddr != "" {
		p, err := startProxy(n.cfg.ProxyAddr, n.Dial, dev.FromMesh, n.cfg.Log)
		if err != nil {
			return localError(StageProxy, err)
		}
		n.mu.Lock()
		n.proxy, n.proxyAddr = p, p.Addr().String()
		n.mu.Unlock()
		dev.ProtectPorts(append(own, uint16(p.Addr().(*net.TCPAddr).Port)))
	}
	if n.cfg.Mode == dataplane.Userspace && n.cfg.Forward.Enabled() {
		var ports []uint16 // nil: every port
		if !n.cfg.Forward.All {
			ports = n.cfg.Forward.Ports
		}
		if err := dev.Forward(ports); err != nil {
			return localError(StageDevice, err)
		}
	}
	// Correct the registered endpoints if the device's differ; a failure is
	// not fatal (we can still reach peers, and the report loop retries).
	n.reportEndpoints(ctx, dev)
	n.goBackground(func() { n.endpointLoop(dev) })
	if err := n.serveLocal(); err != nil {
		return err
	}

	n.mu.Lock()
	if n.logout != nil || n.closed {
		n.mu.Unlock()
		return &StartError{Stage: StageProxy, Kind: KindInterrupted, Err: errors.New("logged out while starting")}
	}
	n.state = ctlsock.StateUp
	peers := len(n.peers)
	n.mu.Unlock()
	n.log.Info("mesh up", "name", reg.Node.Name, "fqdn", reg.Node.FQDN, "ipv4", reg.Node.IPv4, "ipv6", controlclient.AddrOrNone(reg.Node.IPv6),
		"peers", peers, "register", registered.Sub(begin).Round(time.Microsecond).String(),
		"map", gotMap.Sub(registered).Round(time.Microsecond).String(),
		"total", time.Since(begin).Round(time.Microsecond).String())
	return n.waitForPeers(ctx)
}

// tunIPv6Off is dataplane.TUNIPv6Off; tests replace it.
var tunIPv6Off = dataplane.TUNIPv6Off

// registersWithoutIPv6 reports whether the node tells the coordinator it
// carries no IPv6 (no_ipv6): in TUN mode where the kernel will refuse IPv6
// on the interface about to be made. Deciding before registering keeps the
// address out of the mesh altogether: no peer resolves it or routes to it.
// (A netstack always carries IPv6.)
func (n *Node) registersWithoutIPv6() bool {
	if n.cfg.Mode != dataplane.TUN {
		return false
	}
	why := tunIPv6Off("")
	if why != "" {
		n.log.Debug("IPv6 is disabled here: registering without an IPv6 address", "why", why)
	}
	return why != ""
}

// devResult is the outcome of creating the device in the background.
type devResult struct {
	dev *dataplane.Device
	err error
}

// goBackground runs f as background work that Logout and Close wait for,
// unless the node is already leaving. The check and the Add share n.mu with
// Logout's and Close's flags, so no work starts after they began waiting.
func (n *Node) goBackground(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logout != nil || n.closed {
		return false
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		f()
	}()
	return true
}

// closeWhenReady closes a device whose creation outlived Start.
func closeWhenReady(ch <-chan devResult) {
	if r := <-ch; r.dev != nil {
		r.dev.Close()
	}
}

func validAddrs(as ...netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// waitFirstMap waits until the first full map has been applied, the stream
// gave up, or ctx ended.
func (n *Node) waitFirstMap(ctx context.Context) error {
	select {
	case <-n.firstMap:
		return nil
	case err := <-n.followEnd:
		n.followEnd <- err // keep it for whoever looks next
		return err
	case <-ctx.Done():
		if st := n.client.MapStatus(); st.LastError != "" {
			return fmt.Errorf("%w (map stream: %s)", ctx.Err(), st.LastError)
		}
		return ctx.Err()
	}
}

// attach hands the device every peer of the map and makes it the target of
// all later deltas, atomically with respect to the map stream.
func (n *Node) attach(dev *dataplane.Device) error {
	logs := &logAfter{}
	defer logs.writeTo(n.log) // deferred first, so it runs after the unlock
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logout != nil || n.closed {
		return errors.New("node left the mesh while starting")
	}
	// The policy goes in before the peers: no peer is ever let in by the
	// absence of the rules.
	n.applyPolicyLocked(dev, logs)
	n.noIPv6 = !slices.ContainsFunc(dev.Addresses(), netip.Addr.Is6)
	if n.noIPv6 && n.self.IPv6.IsValid() {
		// Only if IPv6 was turned off between registersWithoutIPv6 and the
		// interface's creation: peers will be told an address that leads
		// nowhere until the node registers again.
		logs.warn("the mesh gave this node an IPv6 address its TUN interface cannot carry (IPv6 was disabled after registration)",
			"ipv6", n.self.IPv6)
	}
	for _, p := range n.peers {
		if err := dev.UpsertPeer(dataplanePeer(p)); err != nil {
			logs.warn("adding peer failed", "peer", p.Name, "err", err)
		}
	}
	n.dp = dev
	return nil
}

// Dial is the proxy's dial function: mesh names and mesh addresses go
// through the tunnel, everything else to the normal network.
func (n *Node) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	addr, port, mesh, err := n.resolveDest(address)
	if err != nil {
		return nil, err
	}
	if !mesh {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	return n.dialMeshAddr(ctx, network, addr, port)
}

// Ready reports whether the node is up; ctlsock's /readyz.
func (n *Node) Ready() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == ctlsock.StateUp {
		return true, ""
	}
	return false, "node is " + n.state
}

// ProxyAddr is the proxy's real listen address ("" when off or not up).
func (n *Node) ProxyAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proxyAddr
}

// Self returns the node as the coordinator last described it.
func (n *Node) Self() meshapi.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.self
}

// Close takes everything down without logging out (call Logout first to
// leave the mesh). It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	localErr := n.closeLocal()
	n.runCancel()
	n.bg.Wait()
	n.mu.Lock()
	dp, parked, p := n.dp, n.parked, n.proxy
	n.dp, n.parked, n.proxy = nil, nil, nil
	if n.state != ctlsock.StateLoggedOut {
		n.state = ctlsock.StateStopped
	}
	n.mu.Unlock()
	errs := []error{localErr}
	if p != nil {
		errs = append(errs, p.Close())
	}
	for _, d := range []*dataplane.Device{dp, parked} {
		if d != nil {
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}
