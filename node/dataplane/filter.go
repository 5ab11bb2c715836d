package dataplane

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/meshinit/meshinit/node/dataplane/packetfilter"
	"github.com/meshinit/meshinit/policy"
)

// filteredTUN is what wireguard-go sees as its TUN in both modes: the real
// inside (netstack link or kernel TUN) with the node's packet filter in
// front. Write (packets the device decrypted, going in) is filtered;
// Read (packets going out to peers) is watched for new flows, so that
// their replies pass, and carries the filter's refusals back to the peers.
type filteredTUN struct {
	tun.Device
	f      *packetfilter.Filter
	inject func(pkt []byte) // sends a packet to the peers through Read
}

func newFilteredTUN(inner tun.Device, f *packetfilter.Filter, inject func([]byte)) *filteredTUN {
	return &filteredTUN{Device: inner, f: f, inject: inject}
}

var rejectBufs = sync.Pool{New: func() any { b := make([]byte, packetfilter.MaxRejectSize); return &b }}

// Write drops what the filter refuses (compacting bufs in place: the
// device rebuilds the slice for every call) and passes the rest on.
func (t *filteredTUN) Write(bufs [][]byte, offset int) (int, error) {
	now := time.Now().Unix()
	keep := bufs[:0]
	var reply *[]byte
	for _, b := range bufs {
		v, n := t.f.Inbound(b[offset:], scratch(&reply), now)
		switch v {
		case packetfilter.Pass:
			keep = append(keep, b)
		case packetfilter.Reject:
			t.inject((*reply)[:n])
		}
	}
	if reply != nil {
		rejectBufs.Put(reply)
	}
	if len(keep) == 0 {
		return len(bufs), nil
	}
	if _, err := t.Device.Write(keep, offset); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// scratch hands out a reply buffer, taken from the pool on first use.
func scratch(b **[]byte) []byte {
	if *b == nil {
		*b = rejectBufs.Get().(*[]byte)
	}
	return **b
}

// Read passes outbound packets on after recording new flows. A new flow
// to an address no peer holds is refused on the spot: its size is set to
// 0 (wireguard-go skips such slots) and the refusal is written back into
// the node's own stack, so the app fails at once instead of waiting on a
// packet WireGuard would drop.
func (t *filteredTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	now := time.Now().Unix()
	var reply []byte
	for i := 0; i < n; i++ {
		if reply == nil {
			reply = make([]byte, writeHeadroom+packetfilter.MaxRejectSize)
		}
		v, rn := t.f.Outbound(bufs[i][offset:offset+sizes[i]], reply[writeHeadroom:], now)
		if v == packetfilter.Pass {
			continue
		}
		sizes[i] = 0
		if v == packetfilter.Reject {
			t.Device.Write([][]byte{reply[:writeHeadroom+rn]}, writeHeadroom)
			reply = nil
		}
	}
	return n, err
}

// writeHeadroom is the offset of packets written to the inside: a kernel
// TUN with offloads needs room for its virtio header in front.
const writeHeadroom = 16

// injectingTUN lets packets the filter builds (refusals) go out through a
// kernel TUN's Read: they wait in a queue, and a read deadline wakes the
// device's blocked Read to pick them up. The deadline error never reaches
// wireguard-go.
type injectingTUN struct {
	tun.Device
	mu      sync.Mutex
	pending [][]byte
}

// maxPendingInjects bounds refusals waiting to go out.
const maxPendingInjects = 64

func (t *injectingTUN) inject(pkt []byte) {
	t.mu.Lock()
	if len(t.pending) < maxPendingInjects {
		t.pending = append(t.pending, append([]byte(nil), pkt...))
	}
	t.mu.Unlock()
	t.Device.File().SetReadDeadline(time.Unix(1, 0))
}

func (t *injectingTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		// Clear the wake-up before looking at the queue: a packet queued
		// after the look sets the deadline again, and the Read below
		// returns at once.
		t.Device.File().SetReadDeadline(time.Time{})
		if n := t.take(bufs, sizes, offset); n > 0 {
			return n, nil
		}
		n, err := t.Device.Read(bufs, sizes, offset)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return n, err
	}
}

func (t *injectingTUN) take(bufs [][]byte, sizes []int, offset int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for n < len(bufs) && len(t.pending) > 0 {
		sizes[n] = copy(bufs[n][offset:], t.pending[0])
		t.pending[0] = nil
		t.pending = t.pending[1:]
		n++
	}
	return n
}

// SetPolicy puts this node's inbound rules in force (nil rules: no policy,
// everything allowed). version is shown in status.
func (d *Device) SetPolicy(version string, rules []policy.Rule) {
	d.filter.SetRules(version, rules)
}

// ProtectPorts sets the TCP ports on the mesh addresses that no peer may
// reach, whatever the policy and MESH_FORWARD say: meshinit's own proxy
// and health listeners. Connections to them are refused with a reset.
func (d *Device) ProtectPorts(ports []uint16) {
	d.filter.SetProtectedPorts(ports)
}

// FilterStats reports the packet filter's policy version and drops.
func (d *Device) FilterStats() packetfilter.Stats { return d.filter.Stats() }

// peerAddrs are the addresses of a peer's allowed IPs (its /32 and /128).
func peerAddrs(prefixes []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, 0, len(prefixes))
	for _, p := range prefixes {
		if p.IsSingleIP() {
			out = append(out, p.Addr())
		}
	}
	return out
}
