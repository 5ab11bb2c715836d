// Package ipam hands out mesh addresses: an IPv4 address from 100.64.0.0/10
// and, paired with it, an IPv6 address from the mesh's ULA /48. Allocation
// takes the lowest free address, so an address freed by a deleted node is
// the next one given out: nothing leaks, and reuse is easy to see.
//
// The IPv6 address of a node is its IPv4 address placed in the last 32 bits
// of the ULA prefix (fdxx:xxxx:xxxx::100.64.0.1), so one allocation covers
// both families and either address names the node. A node may also hold
// only the IPv4 address (one that cannot carry IPv6): its IPv6 pair is then
// unused but not free, and is freed with the IPv4 address.
package ipam

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
)

// V4Prefix is the mesh's IPv4 range (RFC 6598 shared address space).
var V4Prefix = netip.MustParsePrefix("100.64.0.0/10")

// ErrExhausted is returned when every address is in use.
var ErrExhausted = errors.New("address pool exhausted")

// size is the number of addresses in V4Prefix; offset 0 (the network) and
// size-1 (the broadcast address) are never handed out.
const size = 1 << (32 - 10)

// Pool allocates address pairs. It is not safe for concurrent use: the
// coordinator's state lock guards it.
type Pool struct {
	v6   netip.Prefix
	used []uint64 // bitmap of offsets in V4Prefix
	low  int      // no free offset below low
	n    int      // addresses in use
}

// NewULA returns a random IPv6 ULA /48 (RFC 4193: fd00::/8 + 40 random bits).
func NewULA() (netip.Prefix, error) {
	var a [16]byte
	a[0] = 0xfd
	if _, err := rand.Read(a[1:6]); err != nil {
		return netip.Prefix{}, fmt.Errorf("generating ULA prefix: %w", err)
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), 48), nil
}

// New returns an empty pool whose IPv6 addresses come from ula, a /48.
func New(ula netip.Prefix) (*Pool, error) {
	if !ula.Addr().Is6() || ula.Bits() != 48 || ula.Addr().As16()[0] != 0xfd || ula.Masked() != ula {
		return nil, fmt.Errorf("IPv6 prefix %s: want a ULA /48 such as fd12:3456:789a::/48", ula)
	}
	p := &Pool{v6: ula, used: make([]uint64, size/64), low: 1}
	p.mark(0)
	p.mark(size - 1)
	return p, nil
}

// Prefixes returns the mesh's two ranges, IPv4 first.
func (p *Pool) Prefixes() []netip.Prefix { return []netip.Prefix{V4Prefix, p.v6} }

// Capacity is how many address pairs a pool hands out.
const Capacity = size - 2

// InUse returns how many node addresses are allocated.
func (p *Pool) InUse() int { return p.n }

// Free returns how many address pairs are left.
func (p *Pool) Free() int { return Capacity - p.n }

// Allocate returns the lowest free address pair, now in use.
func (p *Pool) Allocate() (v4, v6 netip.Addr, err error) {
	off, ok := p.lowest()
	if !ok {
		return netip.Addr{}, netip.Addr{}, ErrExhausted
	}
	p.mark(off)
	p.n++
	p.low = off + 1
	return p.pair(off)
}

// Next returns the pair Allocate would return, leaving it free (Reserve
// takes it).
func (p *Pool) Next() (v4, v6 netip.Addr, err error) {
	off, ok := p.lowest()
	if !ok {
		return netip.Addr{}, netip.Addr{}, ErrExhausted
	}
	return p.pair(off)
}

func (p *Pool) lowest() (int, bool) {
	for w := p.low / 64; w < len(p.used); w++ {
		if p.used[w] != ^uint64(0) {
			return w*64 + bits.TrailingZeros64(^p.used[w]), true
		}
	}
	return 0, false
}

// Reserve marks a known pair as used (loading nodes from the store). It
// fails if the addresses are not a pair of this pool or already used. v6
// may be the zero Addr (a node without IPv6): the offset is taken all the
// same.
func (p *Pool) Reserve(v4, v6 netip.Addr) error {
	off, err := p.offset(v4, v6)
	if err != nil {
		return err
	}
	if p.isUsed(off) {
		return fmt.Errorf("address %s is already in use", v4)
	}
	p.mark(off)
	p.n++
	if off == p.low {
		p.low = off + 1 // no free offset below low, still
	}
	return nil
}

// Release returns a pair to the pool (v6 zero for a node without IPv6).
// Releasing a free pair is an error.
func (p *Pool) Release(v4, v6 netip.Addr) error {
	off, err := p.offset(v4, v6)
	if err != nil {
		return err
	}
	if !p.isUsed(off) {
		return fmt.Errorf("address %s is not in use", v4)
	}
	p.used[off/64] &^= 1 << (off % 64)
	p.n--
	if off < p.low {
		p.low = off
	}
	return nil
}

func (p *Pool) pair(off int) (netip.Addr, netip.Addr, error) {
	b4 := V4Prefix.Addr().As4()
	v := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3]) + uint32(off)
	a4 := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	a16 := p.v6.Addr().As16()
	copy(a16[12:], a4[:])
	return netip.AddrFrom4(a4), netip.AddrFrom16(a16), nil
}

func (p *Pool) offset(v4, v6 netip.Addr) (int, error) {
	if !v4.Is4() || !V4Prefix.Contains(v4) {
		return 0, fmt.Errorf("address %s is outside %s", v4, V4Prefix)
	}
	b := v4.As4()
	off := int(uint32(b[1]&0x3f)<<16 | uint32(b[2])<<8 | uint32(b[3]))
	if off == 0 || off == size-1 {
		return 0, fmt.Errorf("address %s is reserved", v4)
	}
	if _, want, _ := p.pair(off); v6.IsValid() && v6 != want {
		return 0, fmt.Errorf("IPv6 address %s is not the pair of %s (want %s)", v6, v4, want)
	}
	return off, nil
}

func (p *Pool) mark(off int)        { p.used[off/64] |= 1 << (off % 64) }
func (p *Pool) isUsed(off int) bool { return p.used[off/64]&(1<<(off%64)) != 0 }
