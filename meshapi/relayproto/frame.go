package relayproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/meshinit/meshinit/meshapi"
)

// FrameType is the first byte of a frame.
type FrameType byte

// The frames. Keys are 32-byte WireGuard public keys.
const (
	// FrameSend (node → relay): destination key, then one packet.
	FrameSend FrameType = 1
	// FrameRecv (relay → node): source key, then one packet.
	FrameRecv FrameType = 2
	// FramePeerGone (relay → node): key, then one reason byte. The relay
	// could not deliver to that key.
	FramePeerGone FrameType = 3
	// FramePing (either way): 8 opaque bytes, answered by a FramePong
	// carrying the same 8 bytes.
	FramePing FrameType = 4
	FramePong FrameType = 5
	// FrameKeepAlive (either way): empty; keeps idle proxies and NATs from
	// dropping the connection. Never answered.
	FrameKeepAlive FrameType = 6

	// Frames of replica links only (mesh.go): a relay may not take them
	// from a node.

	// FrameMeshAuth (dialing replica → relay): the dialer's 32-byte proof
	// that it holds the mesh key, its first frame.
	FrameMeshAuth FrameType = 7
	// FramePresence (relay → dialing replica): one op byte (PresenceHere
	// or PresenceGone), then 1 to MaxPresenceKeys keys: nodes that now
	// have, or no longer have, a connection on the sending relay.
	FramePresence FrameType = 8
	// FrameForward (dialing replica → relay): destination key, source
	// key, then one packet, for a node connected to the receiving relay.
	// It is delivered there or dropped; never forwarded again.
	FrameForward FrameType = 9
)

func (t FrameType) String() string {
	switch t {
	case FrameSend:
		return "send"
	case FrameRecv:
		return "recv"
	case FramePeerGone:
		return "peer-gone"
	case FramePing:
		return "ping"
	case FramePong:
		return "pong"
	case FrameKeepAlive:
		return "keepalive"
	case FrameMeshAuth:
		return "mesh-auth"
	case FramePresence:
		return "presence"
	case FrameForward:
		return "forward"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// Reasons of FramePeerGone.
const (
	// GoneNotHere: the destination has no relay connection.
	GoneNotHere byte = 1
)

const (
	// MaxPacket is the largest packet a send or recv frame carries.
	MaxPacket = 64 << 10
	// HeaderLen is the frame header: type, then the body length as a
	// big-endian uint32.
	HeaderLen = 5
	// KeyLen is the length of a key in a frame body.
	KeyLen = len(meshapi.Key{})
	// MaxBody is the largest body of a node's frame (send or recv).
	MaxBody = KeyLen + MaxPacket
	// maxAnyBody is the largest body of any frame: a forward carries a
	// second key.
	maxAnyBody = 2*KeyLen + MaxPacket
	// PingLen is the body length of ping and pong frames.
	PingLen = 8
)

// AppendPacket appends a send frame (or, with typ FrameRecv, a recv frame)
// carrying packet for key k.
func AppendPacket(dst []byte, typ FrameType, k meshapi.Key, packet []byte) []byte {
	dst = appendHeader(dst, typ, KeyLen+len(packet))
	dst = append(dst, k[:]...)
	return append(dst, packet...)
}

// AppendPeerGone appends a peer-gone frame.
func AppendPeerGone(dst []byte, k meshapi.Key, reason byte) []byte {
	dst = appendHeader(dst, FramePeerGone, KeyLen+1)
	dst = append(dst, k[:]...)
	return append(dst, reason)
}

// AppendPing appends a ping or pong frame (typ) with its 8 bytes.
func AppendPing(dst []byte, typ FrameType, data [PingLen]byte) []byte {
	dst = appendHeader(dst, typ, PingLen)
	return append(dst, data[:]...)
}

// AppendKeepAlive appends a keepalive frame.
func AppendKeepAlive(dst []byte) []byte { return appendHeader(dst, FrameKeepAlive, 0) }

func appendHeader(dst []byte, typ FrameType, n int) []byte {
	dst = append(dst, byte(typ))
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// Frame is one decoded frame. Packet aliases the reader's buffer: it is
// valid until the next call to Next.
type Frame struct {
	Type   FrameType
	Key    meshapi.Key // send, recv, peer-gone
	Packet []byte      // send, recv
	Reason byte        // peer-gone
	Ping   [PingLen]byte
	Src    meshapi.Key   // forward: the sending node (Key is the destination)
	Op     byte          // presence: PresenceHere or PresenceGone
	Keys   []meshapi.Key // presence
	Proof  [ProofLen]byte
}

// ErrFrame marks a malformed frame; the connection cannot be trusted past
// it and is closed.
var ErrFrame = errors.New("relay frame")

// Reader decodes frames from a byte stream.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader reads frames from r. bufSize is the read buffer (a larger one
// lets Buffered batch more frames per read system call); at least
// HeaderLen plus the largest frame body is used.
func NewReader(r io.Reader, bufSize int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, max(bufSize, HeaderLen+maxAnyBody)), buf: make([]byte, maxAnyBody)}
}

// Buffered reports whether a whole frame is already buffered, so that
// Next returns without reading from the connection.
func (r *Reader) Buffered() bool {
	n := r.r.Buffered()
	if n < HeaderLen {
		return false
	}
	h, _ := r.r.Peek(HeaderLen)
	return n >= HeaderLen+int(binary.BigEndian.Uint32(h[1:]))
}

// Next reads the next frame. Unknown frame types are skipped (a newer
// peer may send them); malformed ones are an error wrapping ErrFrame.
func (r *Reader) Next() (Frame, error) {
	for {
		var h [HeaderLen]byte
		if _, err := io.ReadFull(r.r, h[:]); err != nil {
			return Frame{}, err
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > uint32(maxAnyBody) {
			return Frame{}, fmt.Errorf("%w: %v body of %d bytes: at most %d", ErrFrame, FrameType(h[0]), n, maxAnyBody)
		}
		body := r.buf[:n]
		if _, err := io.ReadFull(r.r, body); err != nil {
			return Frame{}, unexpected(err)
		}
		f, known, err := decode(FrameType(h[0]), body)
		if err != nil || known {
			return f, err
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decode interprets one frame body; known is false for types this version
// does not know.
func decode(t FrameType, body []byte) (f Frame, known bool, err error) {
	f.Type = t
	want := -1 // exact length, or -1 for "key and at least 0 bytes"
	switch t {
	case FrameSend, FrameRecv:
		if len(body) > MaxBody {
			return Frame{}, true, fmt.Errorf("%w: %v packet of %d bytes: at most %d", ErrFrame, t, len(body)-KeyLen, MaxPacket)
		}
	case FrameMeshAuth, FramePresence, FrameForward:
		f, err := decodeMesh(t, body)
		return f, true, err
	case FramePeerGone:
		want = KeyLen + 1
	case FramePing, FramePong:
		want = PingLen
	case FrameKeepAlive:
		want = 0
	default:
		return Frame{}, false, nil
	}
	if (want >= 0 && len(body) != want) || (want < 0 && len(body) < KeyLen) {
		return Frame{}, true, fmt.Errorf("%w: %v body of %d bytes is malformed", ErrFrame, t, len(body))
	}
	switch t {
	case FrameSend, FrameRecv:
		copy(f.Key[:], body)
		f.Packet = body[KeyLen:]
	case FramePeerGone:
		copy(f.Key[:], body)
		f.Reason = body[KeyLen]
	case FramePing, FramePong:
		copy(f.Ping[:], body)
	}
	return f, true, nil
}

// Append re-encodes f (the inverse of Next).
func (f Frame) Append(dst []byte) []byte {
	switch f.Type {
	case FrameSend, FrameRecv:
		return AppendPacket(dst, f.Type, f.Key, f.Packet)
	case FramePeerGone:
		return AppendPeerGone(dst, f.Key, f.Reason)
	case FramePing, FramePong:
		return AppendPing(dst, f.Type, f.Ping)
	case FrameKeepAlive:
		return AppendKeepAlive(dst)
	case FrameMeshAuth:
		return AppendMeshAuth(dst, f.Proof)
	case FramePresence:
		return AppendPresence(dst, f.Op, f.Keys)
	case FrameForward:
		return AppendForward(dst, f.Key, f.Src, f.Packet)
	}
	return dst
}
