package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// relayBufferSize is the copy buffer per direction. Larger than io.Copy's
// 32 KiB so that one read from a userspace TCP connection can take a whole
// 64 KiB segmentation-offload packet's worth of data.
const relayBufferSize = 128 << 10

var relayBuffers = sync.Pool{New: func() any { b := make([]byte, relayBufferSize); return &b }}

type closeWriter interface{ CloseWrite() error }

// Relay copies bytes both ways between a and b until both directions have
// ended, then closes both. A clean end of one direction is passed on as a
// half-close (CloseWrite) so request/response protocols that shut down
// their sending side still get their answer; an error in either direction
// closes both connections at once.
func Relay(a, b net.Conn) {
	errc := make(chan error, 1)
	go func() { errc <- copyHalf(b, a) }()
	err := copyHalf(a, b)
	if err != nil {
		a.Close()
		b.Close()
	}
	<-errc
	a.Close()
	b.Close()
}

// copyHalf copies src to dst and then half-closes dst. On an error it
// closes both, which also unblocks the other direction.
func copyHalf(dst, src net.Conn) error {
	err := copyConn(dst, src)
	if err != nil {
		dst.Close()
		src.Close()
		return err
	}
	if cw, ok := dst.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return nil
		}
	}
	dst.Close()
	return nil
}

func copyConn(dst, src net.Conn) error {
	// Kernel socket to kernel socket: io.Copy uses splice(2), no copies
	// through user memory.
	if _, ok := src.(*net.TCPConn); ok {
		if _, ok := dst.(*net.TCPConn); ok {
			_, err := io.Copy(dst, src)
			return ignoreClosed(err)
		}
	}
	// Otherwise a pooled buffer; the wrappers hide ReadFrom/WriteTo, which
	// would substitute their own 32 KiB buffer per call.
	bp := relayBuffers.Get().(*[]byte)
	defer relayBuffers.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return ignoreClosed(err)
}

// ignoreClosed treats "use of closed connection" as a normal end: it is
// what the other direction's shutdown looks like from here.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
