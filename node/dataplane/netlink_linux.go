package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// A minimal rtnetlink client: just enough to bring a link up, add an
// address and add a route, each one request answered by one ack. (The
// alternative, running ip(8), would need iproute2 in the image.)

type rtnl struct {
	fd  int
	seq uint32
}

func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd}, nil
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
	buf := make([]byte, 8192)
	for {
		nr, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:nr])
		if err != nil {
			return fmt.Errorf("netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("netlink reply: short error message")
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return syscall.Errno(-code)
			}
			return nil
		}
	}
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
		return fmt.Errorf("setting interface %d up: %w", index, err)
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
