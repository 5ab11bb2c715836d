package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// client is one relay connection: a node's, or a link with another
// replica's relay (mesh.go), which has the same queues and writer.
type client struct {
	s    *Server
	key  meshapi.Key // a node's; zero for a link
	peer string      // a link's replica id
	conn net.Conn
	// fullDrop is the drop reason when the data queue overflows.
	fullDrop string

	mu     sync.Mutex
	data   frameRing // packet frames for this connection, oldest first
	ctl    frameRing // control frames for this node (pong, peer-gone)
	closed bool
	wake   chan struct{} // cap 1: the writer has work
	done   chan struct{} // closed when the connection is closed
	// presence (accepted links only) is what the linked relay has yet to
	// hear of our nodes: true for connected, false for gone. It coalesces,
	// so it is bounded by the number of nodes and never drops a change.
	presence map[meshapi.Key]bool

	// present (dialed links only, guarded by Server.mu) is the nodes the
	// linked relay says are connected to it.
	present map[meshapi.Key]struct{}
}

func newClient(s *Server, k meshapi.Key, conn net.Conn) *client {
	return &client{
		s: s, key: k, conn: conn, fullDrop: dropQueueFull,
		data: newFrameRing(s.cfg.QueueLen),
		ctl:  newFrameRing(ctlQueueLen),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// close ends the connection once; it reports whether this call did.
func (c *client) close(reason string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	lost := c.data.len()
	c.data.reset()
	c.ctl.reset()
	c.presence = nil
	c.mu.Unlock()
	if lost > 0 {
		c.s.metrics.drop(dropDisconnected, lost)
	}
	close(c.done)
	c.conn.Close()
	return true
}

// enqueue puts a frame in the data or control queue, dropping that
// queue's oldest frame when it is full. It never blocks.
func (c *client) enqueue(frame []byte, control bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		putBuf(frame)
		c.s.metrics.drop(dropDisconnected, 1)
		return
	}
	q := &c.data
	if control {
		q = &c.ctl
	}
	dropped := q.push(frame)
	c.mu.Unlock()
	c.wakeWriter()
	if dropped != nil {
		putBuf(dropped)
		reason := c.fullDrop
		if control {
			reason = dropControlQueueFull
		}
		c.s.metrics.drop(reason, 1)
	}
}

// wakeWriter tells the writer it has work; it never blocks.
func (c *client) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readFrames reads frames until the connection ends or handle fails. It
// answers pings and skips pongs and keepalives; handle gets the others.
func (c *client) readFrames(fr *relayproto.Reader, handle func(relayproto.Frame) error) error {
	for {
		c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		f, err := fr.Next()
		if err != nil {
			return err
		}
		switch f.Type {
		case relayproto.FramePing:
			c.enqueue(relayproto.AppendPing(getBuf(relayproto.HeaderLen+relayproto.PingLen), relayproto.FramePong, f.Ping), true)
		case relayproto.FramePong, relayproto.FrameKeepAlive:
		default:
			if err := handle(f); err != nil {
				return err
			}
		}
	}
}

// readLoop reads the node's frames until the connection ends.
func (c *client) readLoop(src io.Reader) error {
	gone := map[meshapi.Key]time.Time{} // last peer-gone sent per unknown destination
	return c.readFrames(relayproto.NewReader(src, bufferedWriter), func(f relayproto.Frame) error {
		if f.Type != relayproto.FrameSend {
			return fmt.Errorf("%w: a node may not send %v frames", relayproto.ErrFrame, f.Type)
		}
		c.forward(f.Key, f.Packet, gone)
		return nil
	})
}

// forward queues a packet for its destination: a node connected here,
// else the link to the replica whose relay has it. A destination that is
// on neither gets the packet held for a moment (it may be connecting: a
// node's first packets often race its peer's relay connection), and the
// sender is told it is not here (at most once a second per destination).
func (c *client) forward(dst meshapi.Key, packet []byte, gone map[meshapi.Key]time.Time) {
	d, link := c.s.route(dst)
	if link != nil && dst != c.key {
		link.enqueue(relayproto.AppendForward(getBuf(relayproto.ForwardLen(len(packet))), dst, c.key, packet), false)
		return
	}
	frame := relayproto.AppendPacket(getBuf(relayproto.HeaderLen+relayproto.KeyLen+len(packet)), relayproto.FrameRecv, c.key, packet)
	if d != nil && dst != c.key {
		d.enqueue(frame, false)
		return
	}
	now := time.Now()
	if dst == c.key || !c.s.hold(dst, frame, now) {
		putBuf(frame)
		c.s.metrics.drop(dropUnknownDest, 1)
	}
	if now.Sub(gone[dst]) >= time.Second {
		if len(gone) > 1024 {
			clear(gone)
		}
		gone[dst] = now
		c.enqueue(relayproto.AppendPeerGone(getBuf(relayproto.HeaderLen+relayproto.KeyLen+1), dst, relayproto.GoneNotHere), true)
	}
}

// writeLoop sends queued frames, control first, many per system call,
// each write bounded by the write timeout. A failed write closes the
// connection.
func (c *client) writeLoop() {
	bw := bufio.NewWriterSize(c.conn, bufferedWriter)
	keepalive := time.NewTimer(c.s.cfg.KeepAlive)
	defer keepalive.Stop()
	var batch [][]byte
	for {
		select {
		case <-c.done:
			return
		case <-keepalive.C:
			batch = append(batch[:0], relayproto.AppendKeepAlive(getBuf(relayproto.HeaderLen)))
		case <-c.wake:
			c.mu.Lock()
			batch = c.ctl.drain(batch[:0])
			batch = c.drainPresence(batch)
			batch = c.data.drain(batch)
			c.mu.Unlock()
		}
		if err := c.writeBatch(bw, batch); err != nil {
			if c.peer != "" { // a link: its reader cleans up
				c.close("write failed: " + err.Error())
			} else {
				c.s.unregister(c, "write failed: "+err.Error())
			}
			return
		}
		keepalive.Reset(c.s.cfg.KeepAlive)
	}
}

func (c *client) writeBatch(bw *bufio.Writer, batch [][]byte) error {
	if len(batch) == 0 {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	var bytes, packets, fwdBytes, fwdPackets int
	var err error
	for i, f := range batch {
		if err == nil {
			_, err = bw.Write(f)
			switch relayproto.FrameType(f[0]) {
			case relayproto.FrameRecv:
				bytes += len(f) - relayproto.HeaderLen - relayproto.KeyLen
				packets++
			case relayproto.FrameForward:
				fwdBytes += len(f) - relayproto.ForwardLen(0)
				fwdPackets++
			}
		}
		putBuf(f)
		batch[i] = nil
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		c.s.metrics.drop(dropWriteError, packets+fwdPackets)
		return err
	}
	c.s.metrics.relayed(bytes, packets)
	c.s.metrics.forwarded(forwardSent, fwdBytes, fwdPackets)
	return nil
}

// frameRing is a bounded FIFO of encoded frames.
type frameRing struct {
	buf        [][]byte
	head, size int
}

func newFrameRing(n int) frameRing { return frameRing{buf: make([][]byte, n)} }

func (r *frameRing) len() int { return r.size }

// push appends f; when full it first removes and returns the oldest frame.
func (r *frameRing) push(f []byte) (dropped []byte) {
	if r.size == len(r.buf) {
		dropped = r.buf[r.head]
		r.buf[r.head] = nil
		r.head = (r.head + 1) % len(r.buf)
		r.size--
	}
	r.buf[(r.head+r.size)%len(r.buf)] = f
	r.size++
	return dropped
}

// drain appends every frame to out, oldest first, and empties the ring.
func (r *frameRing) drain(out [][]byte) [][]byte {
	for i := 0; i < r.size; i++ {
		j := (r.head + i) % len(r.buf)
		out = append(out, r.buf[j])
		r.buf[j] = nil
	}
	r.head, r.size = 0, 0
	return out
}

func (r *frameRing) reset() {
	for i := range r.buf {
		if r.buf[i] != nil {
			putBuf(r.buf[i])
			r.buf[i] = nil
		}
	}
	r.head, r.size = 0, 0
}

// Frame buffers are pooled: most packets fit in a small one.
const smallBuf = 2048

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

func getBuf(n int) []byte {
	if n > smallBuf {
		return make([]byte, 0, n)
	}
	return (*bufPool.Get().(*[]byte))[:0]
}

func putBuf(b []byte) {
	if cap(b) == smallBuf {
		b = b[:0]
		bufPool.Put(&b)
	}
}
