package coordinator

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// streamWriter sends stream lines in batches: lines are gathered in a
// pooled buffer and each batch goes out at once. A stream holds no buffer
// while it waits, so 10 000 idle streams cost no buffers at all.
//
// On HTTP/1.x the connection is hijacked and the writer frames the chunked
// encoding itself, so that a batch is exactly one write(2): net/http's
// chunk writer makes two or three per flush, and with 10 000 streams the
// syscalls are most of the coordinator's work. On HTTP/2 it uses the
// ResponseWriter.
type streamWriter struct {
	timeout     time.Duration
	buf         *[]byte // nil between batches
	deadlineSet time.Time

	w  http.ResponseWriter // HTTP/2
	rc *http.ResponseController

	conn net.Conn      // hijacked HTTP/1.x connection
	gone chan struct{} // closed when the client closed the hijacked connection
}

// sendAt is the batch size that is sent before the batch is complete (a
// full map goes out in pieces of about this size).
const sendAt = 64 << 10

// headroom is kept free at the start of a hijacked stream's batch for the
// chunk header (hex length and CRLF), so header and data go in one write.
const headroom = 18

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, sendAt+4096); return &b }}

// startStream answers 200 with the stream's content type and returns the
// writer for its lines.
func startStream(w http.ResponseWriter, r *http.Request, contentType string, timeout time.Duration) (*streamWriter, error) {
	sw := &streamWriter{timeout: timeout, w: w, rc: http.NewResponseController(w)}
	if r.ProtoMajor == 1 {
		conn, brw, err := sw.rc.Hijack()
		if err == nil {
			// A client sends nothing after its GET; anything it does send
			// is discarded, and EOF or an error means it went away.
			if n := brw.Reader.Buffered(); n > 0 {
				brw.Reader.Discard(n)
			}
			conn.SetReadDeadline(time.Time{}) // the stream lives as long as the client stays
			sw.conn, sw.gone = conn, make(chan struct{})
			go watchClose(conn, sw.gone)
			head := "HTTP/1.1 200 OK\r\nContent-Type: " + contentType +
				"\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n" +
				// The connection ends with the stream: a client must not reuse it.
				"Connection: close\r\n\r\n"
			conn.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := conn.Write([]byte(head)); err != nil {
				conn.Close()
				return nil, err
			}
			return sw, nil
		}
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return sw, nil
}

func watchClose(conn net.Conn, gone chan<- struct{}) {
	b := make([]byte, 64)
	for {
		if _, err := conn.Read(b); err != nil {
			close(gone)
			return
		}
	}
}

// clientGone is closed when the client closed a hijacked connection (nil,
// never closed, on HTTP/2: use the request context there).
func (sw *streamWriter) clientGone() <-chan struct{} { return sw.gone }

// add appends p to the batch, sending early when the batch is large.
func (sw *streamWriter) add(p []byte) error {
	if sw.buf == nil {
		sw.buf = batchPool.Get().(*[]byte)
		if sw.conn != nil {
			*sw.buf = (*sw.buf)[:headroom]
		}
	}
	*sw.buf = append(*sw.buf, p...)
	if len(*sw.buf) >= sendAt {
		return sw.write()
	}
	return nil
}

// addParts adds the parts of one line. (Writing them with writev from the
// cache, without the copy, was tried: Go keeps a per-connection iovec array
// of up to 16 KiB after the first writev, 160 MiB over 10 000 streams.)
func (sw *streamWriter) addParts(parts [][]byte) error {
	for _, p := range parts {
		if err := sw.add(p); err != nil {
			return err
		}
	}
	return nil
}

// send writes the batch and flushes it to the client.
func (sw *streamWriter) send() error {
	if err := sw.write(); err != nil {
		return err
	}
	if sw.conn != nil {
		return nil
	}
	return sw.rc.Flush()
}

func (sw *streamWriter) write() error {
	if sw.buf == nil {
		return nil
	}
	b := sw.buf
	sw.buf = nil
	defer func() {
		if cap(*b) <= 2*sendAt { // do not pool the odd huge buffer
			*b = (*b)[:0]
			batchPool.Put(b)
		}
	}()
	// The write deadline is pushed forward at most once a second (a timer
	// update per write shows in profiles at 10 000 streams): a stuck peer is
	// dropped after between timeout-1s and timeout.
	now := time.Now()
	refresh := now.Sub(sw.deadlineSet) > time.Second
	if refresh {
		sw.deadlineSet = now
	}
	if sw.conn == nil {
		if refresh {
			sw.rc.SetWriteDeadline(now.Add(sw.timeout))
		}
		_, err := sw.w.Write(*b)
		return err
	}
	if refresh {
		sw.conn.SetWriteDeadline(now.Add(sw.timeout))
	}
	data := *b
	n := len(data) - headroom
	if n == 0 {
		return nil
	}
	var hb [headroom]byte
	h := append(strconv.AppendInt(hb[:0], int64(n), 16), '\r', '\n')
	start := headroom - len(h)
	copy(data[start:], h)
	data = append(data, '\r', '\n')
	*b = data
	_, err := sw.conn.Write(data[start:])
	return err
}

// close ends the stream: the last chunk on a hijacked connection, which is
// then closed.
func (sw *streamWriter) close() {
	if sw.conn == nil {
		return
	}
	sw.write()
	sw.conn.SetWriteDeadline(time.Now().Add(time.Second))
	sw.conn.Write([]byte("0\r\n\r\n"))
	sw.conn.Close()
}
