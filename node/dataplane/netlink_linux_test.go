package dataplane

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nlMessage builds one netlink message: header and payload.
func nlMessage(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.SizeofNlMsghdr+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, payload...)
	return b[:align4(len(b))]
}

// nlAck is the kernel's answer to request seq: errno 0 for success, and with
// a message an extended ack (the request's header echoed, capped, then the
// NLMSGERR_ATTR_MSG attribute), as the kernel sends it.
func nlAck(seq uint32, errno syscall.Errno, message string) []byte {
	p := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	p = append(p, nlMessage(unix.RTM_NEWADDR, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, nil)...)
	flags := uint16(0)
	if message != "" {
		flags = unix.NLM_F_CAPPED | unix.NLM_F_ACK_TLVS
		attr := append([]byte(message), 0)
		p = binary.NativeEndian.AppendUint16(p, uint16(4+len(attr)))
		p = binary.NativeEndian.AppendUint16(p, unix.NLMSGERR_ATTR_MSG)
		p = append(p, attr...)
		for len(p)%4 != 0 {
			p = append(p, 0)
		}
	}
	return nlMessage(unix.NLMSG_ERROR, flags, seq, p)
}

// The ack of our request is found among other messages; a refusal gives
// the errno and the kernel's own words; acks of other requests are not
// taken for ours.
func TestParseAck(t *testing.T) {
	other := nlMessage(unix.RTM_NEWLINK, 0, 7, make([]byte, 16))
	for _, tc := range []struct {
		name    string
		in      []byte
		done    bool
		errno   syscall.Errno
		message string
	}{
		{"success", nlAck(7, 0, ""), true, 0, ""},
		{"after another message", append(other, nlAck(7, 0, "")...), true, 0, ""},
		{"refused", nlAck(7, unix.EACCES, ""), true, unix.EACCES, ""},
		{"refused, with the kernel's words", nlAck(7, unix.EACCES, "IPv6 is disabled on this device"), true, unix.EACCES, "IPv6 is disabled on this device"},
		{"another request's ack", nlAck(6, unix.EEXIST, ""), false, 0, ""},
		{"nothing", nil, false, 0, ""},
	} {
		done, err := parseAck(tc.in, 7)
		if done != tc.done {
			t.Errorf("%s: done %v, want %v (%v)", tc.name, done, tc.done, err)
			continue
		}
		var kerr *kernelError
		switch {
		case tc.errno == 0 && err != nil:
			t.Errorf("%s: %v, want success", tc.name, err)
		case tc.errno != 0 && (!errors.As(err, &kerr) || kerr.Errno != tc.errno || kerr.Message != tc.message || !errors.Is(err, tc.errno)):
			t.Errorf("%s: %v (%#v), want errno %v with message %q", tc.name, err, err, tc.errno, tc.message)
		}
	}
	if done, err := parseAck([]byte{200, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}, 7); !done || err == nil {
		t.Errorf("a message longer than the datagram: done %v, %v; want an error", done, err)
	}
}

// FuzzParseAck: any datagram on the socket is read without a panic, and a
// refusal always carries a non-zero errno.
func FuzzParseAck(f *testing.F) {
	f.Add(nlAck(1, 0, ""), uint32(1))
	f.Add(nlAck(1, unix.EACCES, "IPv6 is disabled on this device"), uint32(1))
	f.Add(append(nlMessage(unix.RTM_NEWLINK, 0, 1, make([]byte, 16)), nlAck(1, unix.ENODEV, "")...), uint32(1))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		_, err := parseAck(b, seq)
		var kerr *kernelError
		if errors.As(err, &kerr) && kerr.Errno == 0 {
			t.Fatalf("a refusal without errno from %x", b)
		}
	})
}

// An exchange the kernel never answers ends at the deadline with an error,
// instead of waiting for ever; messages for other requests do not satisfy
// it, the ack of ours does. (A socket pair stands in for the kernel's end,
// which always answers.)
func TestWaitAckHasADeadline(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	n := &rtnl{fd: fds[0], seq: 3, timeout: 50 * time.Millisecond}
	defer n.close()

	wait := func() error {
		done := make(chan error, 1)
		go func() { done <- n.waitAck(time.Now().Add(n.timeout)) }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("waitAck still waiting 20s after its 50ms deadline")
			return nil
		}
	}
	if err := wait(); !errors.Is(err, errNoAck) {
		t.Fatalf("no answer: %v, want %v", err, errNoAck)
	}
	if _, err := unix.Write(fds[1], nlAck(2, 0, "")); err != nil {
		t.Fatal(err)
	}
	if err := wait(); !errors.Is(err, errNoAck) {
		t.Fatalf("only an earlier request's ack: %v, want %v", err, errNoAck)
	}
	if _, err := unix.Write(fds[1], nlAck(3, unix.EACCES, "IPv6 is disabled on this device")); err != nil {
		t.Fatal(err)
	}
	if err := wait(); !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "IPv6 is disabled on this device") {
		t.Fatalf("refusal: %v", err)
	}
}

// A refusal from the real kernel names the step and keeps the errno. The
// interface index exists nowhere, so nothing is changed, as root or not
// (ENODEV, or EPERM without CAP_NET_ADMIN).
func TestKernelRefusalNamesTheStep(t *testing.T) {
	n, err := openRTNL()
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	const noSuchIndex = 0x7ffffff0
	err = n.addAddress(noSuchIndex, netip.MustParseAddr("198.18.0.1"))
	var kerr *kernelError
	if !strings.HasPrefix(fmtErr(err), "adding address 198.18.0.1/32: ") || !errors.As(err, &kerr) ||
		(kerr.Errno != unix.ENODEV && kerr.Errno != unix.EPERM) {
		t.Fatalf("adding an address to a missing interface: %v", err)
	}
	err = n.addRoute(noSuchIndex, netip.MustParsePrefix("198.18.0.0/24"))
	if !strings.HasPrefix(fmtErr(err), "adding route 198.18.0.0/24: ") || !errors.As(err, &kerr) {
		t.Fatalf("adding a route to a missing interface: %v", err)
	}
	t.Logf("the kernel said: %v", err)
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// ipv6Off reads the interface's own disable_ipv6, and tells a kernel
// without IPv6 (no ipv6 directory) from one where /proc/sys is missing.
func TestIPv6OffReadsTheInterfaceSetting(t *testing.T) {
	root := t.TempDir()
	write := func(name, value string) { writeDisableIPv6(t, root, name, value) }
	write("mesh0", "1")
	write("mesh1", "0")
	if got := ipv6Off(root, "mesh0"); got != "net.ipv6.conf.mesh0.disable_ipv6=1" {
		t.Errorf("disabled: %q", got)
	}
	if got := ipv6Off(root, "mesh1"); got != "" {
		t.Errorf("enabled: %q", got)
	}
	noIPv6 := t.TempDir()
	if got := ipv6Off(noIPv6, "mesh0"); !strings.Contains(got, "no IPv6") {
		t.Errorf("kernel without IPv6: %q", got)
	}
	if got := ipv6Off(filepath.Join(noIPv6, "missing"), "mesh0"); got != "" {
		t.Errorf("no /proc/sys/net at all: %q, want IPv6 tried", got)
	}
	// and on this machine, for loopback, the kernel's own file agrees with
	// what ipv6Off says
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6"); err == nil {
		if off := ipv6Off("/proc/sys/net", "lo") != ""; off != (strings.TrimSpace(string(b)) == "1") {
			t.Errorf("lo: ipv6Off says off=%v, the kernel's file says %q", off, b)
		}
	}
}

// tunIPv6Off, asked before the interface exists, predicts what ipv6Off
// will say once it does: the default's setting for a new interface, the
// interface's own for one that exists, and "no IPv6" for a kernel without.
func TestTUNIPv6OffPredictsFromTheDefault(t *testing.T) {
	root := t.TempDir()
	write := func(name, value string) { writeDisableIPv6(t, root, name, value) }
	write("default", "1")
	if got := tunIPv6Off(root, ""); got != "net.ipv6.conf.default.disable_ipv6=1" {
		t.Errorf("a new %s where the default is off: %q", DefaultTUNName, got)
	}
	write("default", "0")
	if got := tunIPv6Off(root, "mesh7"); got != "" {
		t.Errorf("a new interface where the default is on: %q", got)
	}
	write("mesh7", "1") // it exists already: its own setting counts
	if got := tunIPv6Off(root, "mesh7"); got != "net.ipv6.conf.mesh7.disable_ipv6=1" {
		t.Errorf("an existing interface with IPv6 off: %q", got)
	}
	if got := tunIPv6Off(t.TempDir(), ""); !strings.Contains(got, "no IPv6") {
		t.Errorf("kernel without IPv6: %q", got)
	}
}

// writeDisableIPv6 writes value as interface name's disable_ipv6 in a fake
// /proc/sys/net rooted at root.
func writeDisableIPv6(t *testing.T, root, name, value string) {
	t.Helper()
	dir := filepath.Join(root, "ipv6", "conf", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disable_ipv6"), []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
