package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// The node's one relay connection, kept up for the device's lifetime. It
// is the only thing an idle node sends on its own: a ping every
// relayPingInterval, so background traffic grows with the number of
// nodes, not with the number of pairs.
const (
	relayPingInterval = 25 * time.Second
	// relayReadTimeout: the relay sends a keepalive every 30 s and answers
	// pings, so this long without a frame means the connection is dead.
	relayReadTimeout  = 75 * time.Second
	relayWriteTimeout = 10 * time.Second
	// maxRelayPending bounds the bytes waiting to be written to the relay;
	// past it new packets are dropped (the kernel's socket buffer holds
	// more behind it, and older packets would be dead letters anyway).
	maxRelayPending = 4 << 20
	maxRelayBacklog = 256 << 10
	relayBacklogAge = 3 * time.Second
	relayBackoffMin = 500 * time.Millisecond
	relayBackoffMax = 15 * time.Second
)

var errRelayDown = errors.New("relay not connected")

// relayClient keeps the relay connection up and moves packets over it.
type relayClient struct {
	cfg       RelayConfig
	log       *slog.Logger
	onConnect func() // called (on its own goroutine) after each connect
	// dial connects to the relay: dialRelay, but in tests.
	dial    func(ctx context.Context, cfg *RelayConfig, kind string) (*relayConn, error)
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	started atomic.Bool // run was started: done will be closed

	mu       sync.Mutex
	cur      *relaySession
	changed  chan struct{} // closed when cur changes
	recvStop chan struct{} // closed by closeReceive (bind Close)
	stun     netip.AddrPort
	status   RelayStatus
	// backlog holds send frames while no connection is up (a node's first
	// packets usually come before its relay connection), sent when one
	// comes; bounded by maxRelayBacklog, and dropped if older than
	// relayBacklogAge (WireGuard retries by then).
	backlog   []byte
	backlogAt time.Time

	dropped atomic.Uint64 // packets dropped: queue full or not connected
}

// RelayStatus is the state of the relay connection.
type RelayStatus struct {
	State      string    // "connected", "connecting" or "off"
	Since      time.Time // of State
	Kind       string    // "meshrelay" (HTTP upgrade) or "websocket"
	LastError  string
	Reconnects int
	Dropped    uint64 // packets not sent: queue full or not connected
}

func newRelayClient(cfg RelayConfig, log *slog.Logger) *relayClient {
	ctx, cancel := context.WithCancel(context.Background())
	return &relayClient{
		cfg: cfg, log: log.With("component", "relay-client"), dial: dialRelay, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}), recvStop: make(chan struct{}),
		status: RelayStatus{State: "connecting", Since: time.Now()},
	}
}

func (c *relayClient) start() {
	c.started.Store(true)
	go c.run()
}

// close ends the connection for good and waits for the loop, if it was
// started: a device that failed half-built never starts it, and waiting
// would hang its error path.
func (c *relayClient) close() {
	c.cancel()
	if c.started.Load() {
		<-c.done
	}
}

func (c *relayClient) up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

func (c *relayClient) stunServer() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stun
}

// Status reports the connection's state.
func (c *relayClient) Status() RelayStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Dropped = c.dropped.Load()
	return s
}

func (c *relayClient) setCurrent(s *relaySession, state, lastErr string) {
	c.mu.Lock()
	c.cur = s
	close(c.changed)
	c.changed = make(chan struct{})
	if c.status.State != state {
		c.status.State, c.status.Since = state, time.Now()
	}
	if s != nil {
		c.status.Kind = s.rc.kind
		if len(c.backlog) > 0 && time.Since(c.backlogAt) < relayBacklogAge {
			s.pending = append(s.pending, c.backlog...)
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		c.backlog = nil
	}
	if lastErr != "" {
		c.status.LastError = lastErr
	}
	c.mu.Unlock()
}

// run connects, waits for the connection to die, and reconnects with
// backoff, until close.
func (c *relayClient) run() {
	defer close(c.done)
	defer c.setCurrent(nil, "off", "")
	kind := relayproto.KindRaw
	if c.cfg.WebSocket {
		kind = relayproto.KindWebSocket
	}
	backoff := relayBackoffMin
	failures := 0
	for c.ctx.Err() == nil {
		base := c.cfg.baseURL()
		rc, err := c.dial(c.ctx, &c.cfg, kind)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			failures++
			c.setCurrent(nil, "connecting", err.Error())
			if failures == 1 || failures%20 == 0 {
				c.log.Warn("relay connection failed; retrying", "err", err, "attempts", failures)
			}
			if c.pause(backoff, base) {
				// The node moved to another coordinator: try its relay now.
				backoff = relayBackoffMin
				continue
			}
			backoff = min(backoff*2, relayBackoffMax)
			continue
		}
		kind = rc.kind // keep what worked
		c.mu.Lock()
		c.stun = c.stunAddr(rc)
		c.status.Reconnects++
		c.mu.Unlock()
		s := newRelaySession(rc)
		c.setCurrent(s, "connected", "")
		c.log.Info("relay connected", "kind", rc.kind, "after_failures", failures)
		failures = 0
		if c.onConnect != nil {
			go c.onConnect()
		}
		began := time.Now()
		go s.writeLoop(c)
		moved := c.await(s)
		c.setCurrent(nil, "connecting", s.err().Error())
		if c.ctx.Err() != nil {
			return
		}
		if moved {
			// The node uses another coordinator now: follow it at once.
			c.log.Info("relay follows the coordinator", "from", rc.base, "to", c.cfg.baseURL())
			backoff = relayBackoffMin
			continue
		}
		c.log.Warn("relay connection lost; reconnecting", "err", s.err(), "lasted", time.Since(began).Round(time.Millisecond).String())
		if time.Since(began) > 30*time.Second {
			backoff = relayBackoffMin
		}
		if c.pause(backoff+rand.N(backoff/2), rc.base) {
			// A dead replica's relay usually goes first, its node follows
			// when the control client notices: dial the new one then.
			c.log.Info("relay follows the coordinator", "from", rc.base, "to", c.cfg.baseURL())
			backoff = relayBackoffMin
			continue
		}
		backoff = min(backoff*2, relayBackoffMax)
	}
}

// errCoordinatorMoved ends a relay connection to a coordinator the node
// no longer uses (its coordinator list failed over).
var errCoordinatorMoved = errors.New("the node moved to another coordinator")

// await waits for session s to end: it dies, the client closes, or (moved
// true) the node's current coordinator is no longer the one s reached. The
// control client signals a move (RelayConfig.WatchURL), so a connected
// client wakes for nothing else.
func (c *relayClient) await(s *relaySession) (moved bool) {
	for {
		base, changed := c.cfg.watch()
		if base != s.rc.base {
			s.kill(errCoordinatorMoved)
			return true
		}
		select {
		case <-s.dead:
			return false
		case <-c.ctx.Done():
			s.kill(net.ErrClosed)
			return false
		case <-changed:
			// Look again: a list that failed over and back leaves s where
			// it should be.
		}
	}
}

// pause waits d before the next dial, which would go to base. It returns
// early: with moved true when the node's coordinator is or becomes another
// one (whose relay is to be dialled at once), with false when the client
// closes.
func (c *relayClient) pause(d time.Duration, base string) (moved bool) {
	now, changed := c.cfg.watch()
	if now != base {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	case <-changed:
		return true
	}
	return false
}

// stunAddr is the coordinator's STUN responder: the announced port on the
// address the relay was reached at (resolved from the URL through a proxy).
func (c *relayClient) stunAddr(rc *relayConn) netip.AddrPort {
	if rc.stunPort <= 0 || rc.stunPort > 65535 {
		return netip.AddrPort{}
	}
	var ip netip.Addr
	if ta, ok := rc.remote.(*net.TCPAddr); ok && rc.remote != nil {
		ip = ta.AddrPort().Addr().Unmap()
	} else if u, err := url.Parse(c.cfg.baseURL()); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			ip = a
		} else if ips, err := net.DefaultResolver.LookupNetIP(c.ctx, "ip", u.Hostname()); err == nil && len(ips) > 0 {
			ip = ips[0].Unmap()
		}
	}
	if !ip.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, uint16(rc.stunPort))
}

// send queues WireGuard packets (or path messages) for peer k.
func (c *relayClient) send(k meshapi.Key, bufs [][]byte) error {
	c.mu.Lock()
	s := c.cur
	if s == nil {
		err := c.holdLocked(k, bufs)
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	if !s.queue(k, bufs) {
		c.dropped.Add(uint64(len(bufs)))
		return fmt.Errorf("relay send queue full (%d bytes waiting)", maxRelayPending)
	}
	return nil
}

// holdLocked keeps send frames in the backlog until a connection is up.
func (c *relayClient) holdLocked(k meshapi.Key, bufs [][]byte) error {
	if len(c.backlog) > 0 && time.Since(c.backlogAt) >= relayBacklogAge {
		c.dropped.Add(1) // counted as one: the stale backlog goes
		c.backlog = c.backlog[:0]
	}
	size := 0
	for _, b := range bufs {
		size += relayproto.HeaderLen + relayproto.KeyLen + len(b)
	}
	if len(c.backlog)+size > maxRelayBacklog || c.ctx.Err() != nil {
		c.dropped.Add(uint64(len(bufs)))
		return errRelayDown
	}
	if len(c.backlog) == 0 {
		c.backlogAt = time.Now()
	}
	for _, b := range bufs {
		c.backlog = relayproto.AppendPacket(c.backlog, relayproto.FrameSend, k, b)
	}
	return nil
}

// receiveFunc is the relay's conn.ReceiveFunc for one Open of the bind.
func (c *relayClient) receiveFunc(b *meshBind) conn.ReceiveFunc {
	c.mu.Lock()
	select {
	case <-c.recvStop:
		c.recvStop = make(chan struct{})
	default:
	}
	stop := c.recvStop
	c.mu.Unlock()
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for {
			c.mu.Lock()
			s, changed := c.cur, c.changed
			c.mu.Unlock()
			select {
			case <-stop:
				return 0, net.ErrClosed
			default:
			}
			if s == nil {
				select {
				case <-changed:
				case <-stop:
					return 0, net.ErrClosed
				}
				continue
			}
			n, err := s.readBatch(b, packets, sizes, eps)
			if err != nil {
				s.kill(err)
			}
			if n > 0 {
				return n, nil
			}
			if err != nil {
				select { // wait for the loop to replace the dead session
				case <-changed:
				case <-stop:
					return 0, net.ErrClosed
				}
			}
		}
	}
}

// closeReceive makes the receive function return (the bind is closing):
// a read blocked on the connection is interrupted, which ends it.
func (c *relayClient) closeReceive() {
	c.mu.Lock()
	select {
	case <-c.recvStop:
	default:
		close(c.recvStop)
	}
	s := c.cur
	c.mu.Unlock()
	if s != nil {
		s.rc.conn.SetReadDeadline(time.Now())
	}
}

// relaySession is one established connection.
type relaySession struct {
	rc     *relayConn
	reader *relayproto.Reader

	mu      sync.Mutex
	pending []byte // encoded frames waiting for the writer
	spare   []byte
	wake    chan struct{}

	dead     chan struct{}
	deadOnce sync.Once
	deadErr  error
}

func newRelaySession(rc *relayConn) *relaySession {
	return &relaySession{rc: rc, reader: relayproto.NewReader(rc.src, 256<<10), wake: make(chan struct{}, 1), dead: make(chan struct{})}
}

func (s *relaySession) kill(err error) {
	s.deadOnce.Do(func() {
		s.deadErr = err
		close(s.dead)
		s.rc.conn.Close()
	})
}

func (s *relaySession) err() error {
	select {
	case <-s.dead:
		return s.deadErr
	default:
		return nil
	}
}

// queue appends send frames; false when the pending bytes would pass the
// bound.
func (s *relaySession) queue(k meshapi.Key, bufs [][]byte) bool {
	size := 0
	for _, b := range bufs {
		size += relayproto.HeaderLen + relayproto.KeyLen + len(b)
	}
	s.mu.Lock()
	if len(s.pending)+size > maxRelayPending {
		s.mu.Unlock()
		return false
	}
	for _, b := range bufs {
		s.pending = relayproto.AppendPacket(s.pending, relayproto.FrameSend, k, b)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// writeLoop writes what is pending in one write per wake-up, and pings.
func (s *relaySession) writeLoop(c *relayClient) {
	ping := time.NewTicker(relayPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-s.wake:
		case <-ping.C:
			var data [relayproto.PingLen]byte
			s.mu.Lock()
			s.pending = relayproto.AppendPing(s.pending, relayproto.FramePing, data)
			s.mu.Unlock()
		}
		s.mu.Lock()
		buf := s.pending
		if len(buf) == 0 {
			s.mu.Unlock()
			continue
		}
		s.pending, s.spare = s.spare[:0], nil // the two buffers trade places
		s.mu.Unlock()
		s.rc.conn.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
		if _, err := s.rc.conn.Write(buf); err != nil {
			s.kill(fmt.Errorf("writing to the relay: %w", err))
			return
		}
		if cap(buf) <= 2*maxRelayPending {
			s.mu.Lock()
			s.spare = buf[:0]
			s.mu.Unlock()
		}
	}
}

// readBatch reads frames into packets: it blocks for the first, then
// takes what is already buffered. Path messages and control frames are
// handled here and take no slot.
func (s *relaySession) readBatch(b *meshBind, packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	n := 0
	for n < len(packets) {
		if !s.reader.Buffered() {
			if n > 0 {
				break
			}
			s.rc.conn.SetReadDeadline(time.Now().Add(relayReadTimeout))
		}
		f, err := s.reader.Next()
		if err != nil {
			return n, err
		}
		switch f.Type {
		case relayproto.FrameRecv:
			if b.relayPacket(f.Key, f.Packet, packets[n], &sizes[n], &eps[n]) {
				n++
			}
		case relayproto.FramePeerGone:
			b.peerNotOnRelay(f.Key)
		case relayproto.FramePing:
			s.mu.Lock()
			s.pending = relayproto.AppendPing(s.pending, relayproto.FramePong, f.Ping)
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	return n, nil
}

// relayPacket handles a packet the relay delivered from key k: a path
// message is handled, a WireGuard packet of a known peer is copied into
// dst for the device. It reports whether dst was filled.
func (b *meshBind) relayPacket(k meshapi.Key, pkt, dst []byte, size *int, ep *conn.Endpoint) bool {
	if isPathMsg(pkt) {
		if senderOf(pkt) == k { // the relay vouches for the sender too
			b.handlePathMsg(pkt, netip.AddrPort{})
		}
		return false
	}
	p := b.peer(k)
	if p == nil || len(pkt) > len(dst) {
		b.unknownSource.Add(1)
		return false
	}
	p.mu.Lock()
	p.relayGone = false
	p.mu.Unlock()
	if !b.arbiter.acceptHandshake(pkt) {
		return false
	}
	*size = copy(dst, pkt)
	*ep = p.ep
	return true
}

// peerNotOnRelay notes that the relay could not deliver to k.
func (b *meshBind) peerNotOnRelay(k meshapi.Key) {
	if p := b.peer(k); p != nil {
		p.mu.Lock()
		p.relayGone = true
		p.mu.Unlock()
	}
}
