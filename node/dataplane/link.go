package dataplane

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// linkQueueLen bounds the packets the netstack may queue for WireGuard
// before new ones are dropped (TCP then backs off), like a NIC's txqueuelen.
// Each entry may be a 64 KiB segmentation-offload packet, but TCP's send
// buffers bound what is really in flight.
const linkQueueLen = 1024

// gsoMaxSize is the largest TCP packet the netstack hands us in one piece;
// we cut it into MTU-sized segments (see gso.go). The TCP sender keeps every
// packet below this minus its maximum header size, so the IP length always
// fits in 16 bits.
const gsoMaxSize = 1<<16 - 1

// netstackLink is the seam between gVisor and wireguard-go in userspace
// mode: to the netstack it is a link endpoint (stack.LinkEndpoint), to the
// WireGuard device it is the TUN (tun.Device).
//
// WHY our own instead of wireguard-go's tun/netstack: that one moves one
// packet per call through an unbuffered channel, copies every packet into a
// fresh view, and makes the netstack cut TCP into MTU-sized packets, each of
// which then runs the whole IP and TCP path. Here
//   - outbound, the netstack hands over TCP packets of up to 64 KiB (host
//     segmentation offload) that Read cuts into MTU-sized segments straight
//     into the device's buffers, up to a batch of 128 per call;
//   - inbound, runs of segments of one TCP flow in each batch the device
//     decrypted are merged (coalesce.go, then gVisor's GRO) before they
//     enter the stack, so the stack sees a few large segments instead of
//     many small ones;
//   - inbound checksums are not verified again: WireGuard's Poly1305 has
//     already authenticated every byte the peer's stack produced.
type netstackLink struct {
	mtu    atomic.Uint32
	events chan tun.Event

	dispatcherMu sync.RWMutex
	dispatcher   stack.NetworkDispatcher

	// Outbound queue, filled by the netstack (WritePackets), drained by the
	// device's single TUN reader goroutine (Read).
	mu     sync.Mutex
	queue  []*stack.PacketBuffer
	head   int
	closed bool
	wake   chan struct{} // capacity 1: "the queue became non-empty"
	done   chan struct{}

	// partial is owned by the reader goroutine: a segmentation packet whose
	// segments did not all fit in the previous Read.
	partial    *stack.PacketBuffer
	partialSeg int

	groPool sync.Pool // *gro.GRO; one per concurrent Write

	dropped atomic.Uint64 // outbound packets dropped because the queue was full
}

var (
	_ stack.LinkEndpoint = (*netstackLink)(nil)
	_ stack.GSOEndpoint  = (*netstackLink)(nil)
	_ tun.Device         = tunView{}
)

func newNetstackLink(mtu int) *netstackLink {
	l := &netstackLink{
		events: make(chan tun.Event, 1),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	l.mtu.Store(uint32(mtu))
	l.groPool.New = func() any {
		g := new(gro.GRO)
		g.Init(true)
		return g
	}
	l.events <- tun.EventUp
	return l
}

// ---- the netstack side (stack.LinkEndpoint) ----

// WritePackets queues outbound packets for the device; it never blocks.
func (l *netstackLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, &tcpip.ErrClosedForSend{}
	}
	wasEmpty := l.head == len(l.queue)
	for _, pkt := range pkts.AsSlice() {
		if len(l.queue)-l.head >= linkQueueLen {
			break
		}
		l.queue = append(l.queue, pkt.IncRef())
		n++
	}
	l.mu.Unlock()
	if n > 0 && wasEmpty {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if dropped := pkts.Len() - n; dropped > 0 {
		l.dropped.Add(uint64(dropped))
		if n == 0 {
			return 0, &tcpip.ErrNoBufferSpace{}
		}
	}
	return n, nil
}

func (l *netstackLink) MTU() uint32                    { return l.mtu.Load() }
func (l *netstackLink) SetMTU(mtu uint32)              { l.mtu.Store(mtu) }
func (l *netstackLink) MaxHeaderLength() uint16        { return 0 }
func (l *netstackLink) LinkAddress() tcpip.LinkAddress { return "" }
func (l *netstackLink) SetLinkAddress(tcpip.LinkAddress) {
}

// Capabilities: RX checksums count as verified (WireGuard authenticated the
// packet); TX checksums are computed by us while segmenting (gso.go).
func (l *netstackLink) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}
func (l *netstackLink) GSOMaxSize() uint32                      { return gsoMaxSize }
func (l *netstackLink) SupportedGSO() stack.SupportedGSO        { return stack.HostGSOSupported }
func (l *netstackLink) Wait()                                   {}
func (l *netstackLink) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (l *netstackLink) AddHeader(*stack.PacketBuffer)           {}
func (l *netstackLink) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (l *netstackLink) SetOnCloseAction(func())                 {}

func (l *netstackLink) Attach(d stack.NetworkDispatcher) {
	l.dispatcherMu.Lock()
	l.dispatcher = d
	l.dispatcherMu.Unlock()
}

func (l *netstackLink) IsAttached() bool {
	l.dispatcherMu.RLock()
	defer l.dispatcherMu.RUnlock()
	return l.dispatcher != nil
}

// Close is stack.LinkEndpoint.Close and tun.Device.Close: both owners call
// it, so it is idempotent.
func (l *netstackLink) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	queued := l.queue[l.head:]
	l.queue, l.head = nil, 0
	close(l.done)
	close(l.events)
	l.mu.Unlock()
	for _, pkt := range queued {
		pkt.DecRef()
	}
}

// ---- the WireGuard side (tun.Device) ----

func (l *netstackLink) File() *os.File           { return nil }
func (l *netstackLink) Name() (string, error)    { return "netstack", nil }
func (l *netstackLink) Events() <-chan tun.Event { return l.events }
func (l *netstackLink) BatchSize() int           { return conn.IdealBatchSize }
func (l *netstackLink) closeDevice() error       { l.Close(); return nil }
func (l *netstackLink) tunMTU() (int, error)     { return int(l.mtu.Load()), nil }
func (l *netstackLink) asTUN() tun.Device        { return tunView{l} }
func (l *netstackLink) droppedOutbound() uint64  { return l.dropped.Load() }

// tunView exposes the tun.Device methods whose names clash with the
// stack.LinkEndpoint ones (MTU, Close).
type tunView struct{ *netstackLink }

func (t tunView) MTU() (int, error) { return t.tunMTU() }
func (t tunView) Close() error      { return t.closeDevice() }

func (l *netstackLink) pop() *stack.PacketBuffer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.popLocked()
}

// popLocked takes the oldest queued packet, or nil; l.mu must be held.
func (l *netstackLink) popLocked() *stack.PacketBuffer {
	if l.head == len(l.queue) {
		return nil
	}
	pkt := l.queue[l.head]
	l.queue[l.head] = nil
	l.head++
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
	return pkt
}

// Read hands the device up to len(bufs) outbound packets, cutting
// segmentation-offload packets into MTU-sized segments. It blocks until
// there is at least one.
func (l *netstackLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for n == 0 {
		if l.partial == nil {
			pkt, err := l.next()
			if err != nil {
				return 0, err
			}
			l.partial, l.partialSeg = pkt, 0
		}
		n = l.fill(bufs, sizes, offset)
	}
	return n, nil
}

// fill writes segments of l.partial and then of further queued packets into
// bufs until bufs are full or the queue is empty.
func (l *netstackLink) fill(bufs [][]byte, sizes []int, offset int) int {
	n := 0
	for n < len(bufs) {
		if l.partial == nil {
			l.partial = l.pop()
			l.partialSeg = 0
			if l.partial == nil {
				break
			}
		}
		wrote, finished := writeSegments(l.partial, l.partialSeg, bufs[n:], sizes[n:], offset)
		n += wrote
		if !finished {
			l.partialSeg += wrote
			break
		}
		l.partial.DecRef()
		l.partial = nil
	}
	return n
}

// next blocks until a packet is queued or the link is closed.
func (l *netstackLink) next() (*stack.PacketBuffer, error) {
	for {
		l.mu.Lock()
		if pkt := l.popLocked(); pkt != nil {
			l.mu.Unlock()
			return pkt, nil
		}
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return nil, os.ErrClosed
		}
		select {
		case <-l.wake:
		case <-l.done:
		}
	}
}

// Write delivers packets the device decrypted into the netstack: runs of
// TCP segments are merged first (coalesce.go), then gVisor's GRO gets a go
// at what is left. The device calls Write from one goroutine per peer, so
// each call has its own coalescing and GRO state.
func (l *netstackLink) Write(bufs [][]byte, offset int) (int, error) {
	l.dispatcherMu.RLock()
	d := l.dispatcher
	l.dispatcherMu.RUnlock()
	if d == nil {
		return 0, os.ErrClosed
	}
	g := l.groPool.Get().(*gro.GRO)
	g.Dispatcher = d
	c := coalescer{deliver: func(v *buffer.View, v6 bool) {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		if v6 {
			pkt.NetworkProtocolNumber = header.IPv6ProtocolNumber
		}
		pkt.RXChecksumValidated = true
		g.Enqueue(pkt)
		pkt.DecRef()
	}}
	var err error
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 {
			continue
		}
		if v := p[0] >> 4; v != 4 && v != 6 {
			err = syscall.EAFNOSUPPORT // not IP: dropped, the rest still goes in
			continue
		}
		c.add(p)
	}
	c.flush()
	g.Flush()
	g.Dispatcher = nil
	l.groPool.Put(g)
	return len(bufs), err
}

// inject queues a packet the device did not get from the netstack (the
// packet filter's refusals) to go out like any other.
func (l *netstackLink) inject(p []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), p...))})
	var list stack.PacketBufferList
	list.PushBack(pkt)
	l.WritePackets(list)
	pkt.DecRef()
}
