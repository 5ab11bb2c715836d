package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A minimal rtnetlink client: just enough to bring a link up, add an
// address and add a route, each one request answered by one ack. (The
// alternative, running ip(8), would need iproute2 in the image.)

// netlinkTimeout bounds each exchange with the kernel. The kernel answers a
// route request at once; a missing answer must fail the start with the step
// named, not hold it until MESH_WAIT_TIMEOUT.
const netlinkTimeout = 5 * time.Second

type rtnl struct {
	fd      int
	seq     uint32
	timeout time.Duration
}

func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// The kernel's own words for a refusal ("IPv6 is disabled on this
	// device") come as extended ack attributes, and the ack need not echo
	// our request. Kernels before 4.12 know neither option; the errno is
	// then all there is.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd, timeout: netlinkTimeout}, nil
}

func (n *rtnl) close() { unix.Close(n.fd) }

// nlAttr is one route attribute.
type nlAttr struct {
	typ  uint16
	data []byte
}

func align4(n int) int { return (n + 3) &^ 3 }

// request sends one message and waits for its ack.
func (n *rtnl) request(typ, flags uint16, body []byte, attrs ...nlAttr) error {
	n.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, 256)
	msg = append(msg, body...)
	msg = msg[:align4(len(msg))]
	for _, a := range attrs {
		l := unix.SizeofRtAttr + len(a.data)
		msg = binary.NativeEndian.AppendUint16(msg, uint16(l))
		msg = binary.NativeEndian.AppendUint16(msg, a.typ)
		msg = append(msg, a.data...)
		for len(msg)%4 != 0 {
			msg = append(msg, 0)
		}
	}
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], n.seq)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	return n.waitAck(time.Now().Add(n.timeout))
}

// errNoAck is the error of an exchange the kernel did not answer in time.
var errNoAck = errors.New("no answer from the kernel")

// waitAck reads until the ack of the current request, or the deadline.
// Messages of other requests (or from anyone but the kernel) are skipped.
func (n *rtnl) waitAck(deadline time.Time) error {
	buf := make([]byte, 8192)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("netlink: %w within %v", errNoAck, n.timeout)
		}
		fds := []unix.PollFd{{Fd: int32(n.fd), Events: unix.POLLIN}}
		ready, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) || ready == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink poll: %w", err)
		}
		nr, from, err := unix.Recvfrom(n.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid != 0 {
			continue // not the kernel
		}
		if done, err := parseAck(buf[:nr], n.seq); done {
			return err
		}
	}
}

// kernelError is the kernel's refusal of a netlink request: the errno, and
// the kernel's explanation when it gave one (extended ack).
type kernelError struct {
	Errno   syscall.Errno
	Message string
}

func (e *kernelError) Error() string {
	if e.Message == "" {
		return e.Errno.Error()
	}
	return fmt.Sprintf("%v (kernel: %s)", e.Errno, e.Message)
}

func (e *kernelError) Unwrap() error { return e.Errno }

// parseAck looks in one datagram from the kernel for the ack of request
// seq: done is true when it is there, with the request's outcome in err.
// A malformed datagram is an error too (done), never a panic.
func parseAck(b []byte, seq uint32) (done bool, err error) {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		mseq := binary.NativeEndian.Uint32(b[8:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return true, fmt.Errorf("netlink reply: bad message length %d", l)
		}
		if mseq == seq && typ == unix.NLMSG_ERROR {
			return true, ackError(b[unix.SizeofNlMsghdr:l], flags)
		}
		b = b[min(align4(l), len(b)):]
	}
	return false, nil
}

// ackError reads an NLMSG_ERROR payload: the errno (0 for success), the
// header of our request (or all of it, unless the kernel capped it), then
// with NLM_F_ACK_TLVS the kernel's attributes, of which the message is the
// one we want.
func ackError(p []byte, flags uint16) error {
	if len(p) < 4 {
		return errors.New("netlink reply: short error message")
	}
	code := int32(binary.NativeEndian.Uint32(p))
	if code == 0 {
		return nil
	}
	kerr := &kernelError{Errno: syscall.Errno(-code)} // the kernel sends -errno
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(p) < 4+unix.SizeofNlMsghdr {
		return kerr
	}
	echoed := unix.SizeofNlMsghdr
	if flags&unix.NLM_F_CAPPED == 0 {
		echoed = align4(int(binary.NativeEndian.Uint32(p[4:])))
	}
	if echoed < unix.SizeofNlMsghdr || 4+echoed > len(p) {
		return kerr
	}
	for tlv := p[4+echoed:]; len(tlv) >= 4; {
		l := int(binary.NativeEndian.Uint16(tlv))
		if l < 4 || l > len(tlv) {
			break
		}
		if binary.NativeEndian.Uint16(tlv[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == unix.NLMSGERR_ATTR_MSG {
			kerr.Message = strings.TrimRight(string(tlv[4:l]), "\x00")
		}
		tlv = tlv[min(align4(l), len(tlv)):]
	}
	return kerr
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// linkUp sets IFF_UP on the interface.
func (n *rtnl) linkUp(index int) error {
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	binary.NativeEndian.PutUint32(body[8:], unix.IFF_UP)  // flags
	binary.NativeEndian.PutUint32(body[12:], unix.IFF_UP) // change mask
	if err := n.request(unix.RTM_NEWLINK, 0, body); err != nil {
		return fmt.Errorf("setting the interface up: %w", err)
	}
	return nil
}

// addAddress adds a as a host address (/32 or /128) of the interface. DAD is
// skipped for IPv6: the mesh assigned the address, and a tentative address
// could not be bound for a second or more after start.
func (n *rtnl) addAddress(index int, a netip.Addr) error {
	bits := a.BitLen()
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0] = family(a)
	body[1] = uint8(bits)
	body[2] = unix.IFA_F_NODAD
	body[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	raw := a.AsSlice()
	err := n.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body,
		nlAttr{unix.IFA_LOCAL, raw}, nlAttr{unix.IFA_ADDRESS, raw})
	if err != nil {
		return fmt.Errorf("adding address %v/%d: %w", a, bits, err)
	}
	return nil
}

// addRoute routes prefix p into the interface.
func (n *rtnl) addRoute(index int, p netip.Prefix) error {
	p = p.Masked()
	body := make([]byte, unix.SizeofRtMsg)
	body[0] = family(p.Addr())
	body[1] = uint8(p.Bits())
	body[4] = unix.RT_TABLE_MAIN
	body[5] = unix.RTPROT_STATIC
	body[6] = unix.RT_SCOPE_LINK
	body[7] = unix.RTN_UNICAST
	oif := binary.NativeEndian.AppendUint32(nil, uint32(index))
	err := n.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body,
		nlAttr{unix.RTA_DST, p.Addr().AsSlice()}, nlAttr{unix.RTA_OIF, oif})
	if err != nil {
		return fmt.Errorf("adding route %v: %w", p, err)
	}
	return nil
}
