package relayproto

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A minimal RFC 6455 WebSocket, enough to carry the relay's byte stream in
// binary messages: no extensions (so no compression), no text messages.
// Written here rather than taken from a library because the relay needs
// only this much, and the standard library has no WebSocket.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// WebSocketAccept is the Sec-WebSocket-Accept value for a client's
// Sec-WebSocket-Key.
func WebSocketAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// NewWebSocketKey returns a fresh Sec-WebSocket-Key.
func NewWebSocketKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA
)

// wsMaxFrame bounds one data frame's payload. A relay frame is at most
// HeaderLen+MaxBody bytes and our writer puts at most a batch of them in
// one message; other clients may fragment differently, so the bound is
// generous but finite.
const wsMaxFrame = 8 << 20

// wsMaxControl is the largest control frame payload RFC 6455 allows.
const wsMaxControl = 125

// WSConn carries a byte stream in WebSocket binary messages: each Write is
// one message, and Read returns the payload bytes of successive data
// frames, whatever their message boundaries. Pings are answered; a close
// frame ends the stream (io.EOF). It is a net.Conn.
type WSConn struct {
	net.Conn
	br     *bufio.Reader
	client bool // clients mask what they send; servers must not

	rmu       sync.Mutex
	remaining uint64 // payload bytes left in the current data frame
	mask      [4]byte
	masked    bool
	maskPos   int
	ctl       [wsMaxControl]byte

	wmu  sync.Mutex
	wbuf []byte
}

// NewWSConn wraps c; br holds bytes already read from c (the rest of the
// handshake's buffer), or nil. client is true on the side that dialed.
func NewWSConn(c net.Conn, br *bufio.Reader, client bool) *WSConn {
	if br == nil {
		br = bufio.NewReaderSize(c, 64<<10)
	}
	return &WSConn{Conn: c, br: br, client: client}
}

// ErrWebSocket marks a WebSocket protocol violation by the other side.
var ErrWebSocket = errors.New("websocket")

// Read implements io.Reader over the data frames' payloads.
func (w *WSConn) Read(p []byte) (int, error) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	for w.remaining == 0 {
		if err := w.nextDataFrame(); err != nil {
			return 0, err
		}
	}
	if uint64(len(p)) > w.remaining {
		p = p[:w.remaining]
	}
	n, err := w.br.Read(p)
	if w.masked {
		for i := range n {
			p[i] ^= w.mask[(w.maskPos+i)&3]
		}
		w.maskPos = (w.maskPos + n) & 3
	}
	w.remaining -= uint64(n)
	if err == io.EOF && w.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// wsHeader is a decoded frame header.
type wsHeader struct {
	fin    bool
	opcode byte
	masked bool
	mask   [4]byte
	length uint64
}

// readWSHeader decodes one frame header from r, checking what RFC 6455
// requires of it.
func readWSHeader(r io.Reader) (wsHeader, error) {
	var b [14]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return wsHeader{}, err
	}
	h := wsHeader{fin: b[0]&0x80 != 0, opcode: b[0] & 0x0F, masked: b[1]&0x80 != 0}
	if b[0]&0x70 != 0 {
		return h, fmt.Errorf("%w: reserved bits set without a negotiated extension", ErrWebSocket)
	}
	n := uint64(b[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, b[2:4]); err != nil {
			return h, unexpected(err)
		}
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		if _, err := io.ReadFull(r, b[2:10]); err != nil {
			return h, unexpected(err)
		}
		n = binary.BigEndian.Uint64(b[2:10])
	}
	h.length = n
	if h.masked {
		if _, err := io.ReadFull(r, h.mask[:]); err != nil {
			return h, unexpected(err)
		}
	}
	switch {
	case h.opcode >= 0x8 && (n > wsMaxControl || !h.fin):
		return h, fmt.Errorf("%w: control frame of %d bytes (fin %v)", ErrWebSocket, n, h.fin)
	case h.opcode < 0x8 && n > wsMaxFrame:
		return h, fmt.Errorf("%w: data frame of %d bytes: at most %d", ErrWebSocket, n, wsMaxFrame)
	}
	return h, nil
}

// nextDataFrame reads frame headers until one with data, handling control
// frames on the way.
func (w *WSConn) nextDataFrame() error {
	h, err := readWSHeader(w.br)
	if err != nil {
		return err
	}
	if h.masked == w.client {
		return fmt.Errorf("%w: frame masking is wrong for this direction", ErrWebSocket)
	}
	switch h.opcode {
	case wsBinary, wsContinuation:
		w.remaining, w.mask, w.masked, w.maskPos = h.length, h.mask, h.masked, 0
		return nil
	case wsPing, wsPong, wsClose:
		ctl := w.ctl[:h.length]
		if _, err := io.ReadFull(w.br, ctl); err != nil {
			return unexpected(err)
		}
		if h.masked {
			for i := range ctl {
				ctl[i] ^= h.mask[i&3]
			}
		}
		switch h.opcode {
		case wsPing:
			return w.writeFrame(wsPong, ctl)
		case wsClose:
			w.writeFrame(wsClose, nil) // best effort: we are done either way
			return io.EOF
		}
		return nil
	}
	return fmt.Errorf("%w: opcode %#x (only binary messages are spoken here)", ErrWebSocket, h.opcode)
}

// Write sends p as one binary message.
func (w *WSConn) Write(p []byte) (int, error) {
	if err := w.writeFrame(wsBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *WSConn) writeFrame(opcode byte, p []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := append(w.wbuf[:0], 0x80|opcode)
	maskBit := byte(0)
	if w.client {
		maskBit = 0x80
	}
	switch n := len(p); {
	case n < 126:
		b = append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		b = append(b, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if w.client {
		var m [4]byte
		rand.Read(m[:])
		b = append(b, m[:]...)
		start := len(b)
		b = append(b, p...)
		for i := range p {
			b[start+i] ^= m[i&3]
		}
	} else {
		b = append(b, p...)
	}
	w.wbuf = b
	_, err := w.Conn.Write(b)
	if cap(w.wbuf) > 4<<20 {
		w.wbuf = nil // do not keep a huge buffer after a burst
	}
	return err
}

// Close sends a close frame (best effort, bounded) and closes the
// connection.
func (w *WSConn) Close() error {
	w.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	w.writeFrame(wsClose, nil)
	return w.Conn.Close()
}
