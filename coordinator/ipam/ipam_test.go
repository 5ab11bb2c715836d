package ipam

import (
	"net/netip"
	"testing"
)

func newPool(t *testing.T) *Pool {
	t.Helper()
	ula, err := NewULA()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ula)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocateLowestFreeAndReuse(t *testing.T) {
	p := newPool(t)
	var v4s []netip.Addr
	var v6s []netip.Addr
	for range 3 {
		a, b, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		v4s, v6s = append(v4s, a), append(v6s, b)
	}
	want := []string{"100.64.0.1", "100.64.0.2", "100.64.0.3"}
	for i, a := range v4s {
		if a.String() != want[i] {
			t.Fatalf("allocation %d = %s, want %s", i, a, want[i])
		}
		if !p.Prefixes()[1].Contains(v6s[i]) || v6s[i].As16()[15] != a.As4()[3] {
			t.Fatalf("IPv6 %s is not the pair of %s", v6s[i], a)
		}
	}
	if err := p.Release(v4s[1], v6s[1]); err != nil {
		t.Fatal(err)
	}
	if p.InUse() != 2 {
		t.Fatalf("InUse = %d after a release, want 2", p.InUse())
	}
	a, _, _ := p.Allocate()
	if a != v4s[1] {
		t.Fatalf("after releasing %s the next allocation is %s: freed addresses must be reused first", v4s[1], a)
	}
	a, _, _ = p.Allocate()
	if a.String() != "100.64.0.4" {
		t.Fatalf("next = %s, want 100.64.0.4", a)
	}
	if err := p.Release(v4s[0], v6s[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(v4s[0], v6s[0]); err == nil {
		t.Fatal("double release accepted")
	}
}

func TestReserve(t *testing.T) {
	p := newPool(t)
	q, _ := New(p.Prefixes()[1])
	var v4, v6 netip.Addr
	for range 5 {
		v4, v6, _ = q.Allocate()
	}
	if err := p.Reserve(v4, v6); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(v4, v6); err == nil {
		t.Fatal("reserving twice accepted")
	}
	a, _, _ := p.Allocate()
	if a.String() != "100.64.0.1" {
		t.Fatalf("after reserving .5 first allocation = %s", a)
	}
	for _, bad := range [][2]string{
		{"10.0.0.1", v6.String()},
		{"100.64.0.0", v6.String()},
		{"100.127.255.255", v6.String()},
		{v4.String(), "fd00::1"},
	} {
		if err := p.Reserve(netip.MustParseAddr(bad[0]), netip.MustParseAddr(bad[1])); err == nil {
			t.Errorf("Reserve(%s, %s) accepted", bad[0], bad[1])
		}
	}
}

func TestNewRejectsNonULA(t *testing.T) {
	for _, s := range []string{"2001:db8::/48", "fd00::/64", "fd00:0:0:1::/48"} {
		if _, err := New(netip.MustParsePrefix(s)); err == nil {
			t.Errorf("New(%s) accepted", s)
		}
	}
}

func TestExhaustion(t *testing.T) {
	p := newPool(t)
	// Fill all but the last usable offset by hand, then take it.
	for w := range p.used {
		p.used[w] = ^uint64(0)
	}
	last := size - 2
	p.used[last/64] &^= 1 << (last % 64)
	p.low = 1
	a, _, err := p.Allocate()
	if err != nil || a.String() != "100.127.255.254" {
		t.Fatalf("last allocation = %s, %v", a, err)
	}
	if _, _, err := p.Allocate(); err != ErrExhausted {
		t.Fatalf("allocation from a full pool: %v, want ErrExhausted", err)
	}
}

func TestNextThenReserveIsAllocate(t *testing.T) {
	ula := netip.MustParsePrefix("fd01:2:3::/48")
	a, _ := New(ula)
	b, _ := New(ula)
	for range 70 {
		v4, v6, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		n4, n6, err := b.Next()
		if err != nil || n4 != v4 || n6 != v6 {
			t.Fatalf("Next %s %s, Allocate %s %s", n4, n6, v4, v6)
		}
		if err := b.Reserve(n4, n6); err != nil {
			t.Fatal(err)
		}
	}
	if a.InUse() != 70 || b.InUse() != 70 || a.Free() != Capacity-70 {
		t.Fatalf("in use %d and %d", a.InUse(), b.InUse())
	}
}

// A node without IPv6 holds its IPv4 address alone: the offset is used
// (never handed out twice, its IPv6 pair with it) and freed with the IPv4
// address.
func TestReserveAndReleaseWithoutIPv6(t *testing.T) {
	p := newPool(t)
	v4, v6, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(v4, netip.Addr{}); err != nil {
		t.Fatalf("Reserve(%s, none): %v", v4, err)
	}
	if p.InUse() != 1 {
		t.Fatalf("in use %d, want 1", p.InUse())
	}
	if err := p.Reserve(v4, v6); err == nil {
		t.Fatal("the pair of an IPv4-only node was reserved again")
	}
	if a, b, _ := p.Next(); a == v4 || b == v6 {
		t.Fatalf("Next = %s, %s: the IPv4-only node's offset is free", a, b)
	}
	if err := p.Release(v4, netip.Addr{}); err != nil {
		t.Fatalf("Release(%s, none): %v", v4, err)
	}
	if a, b, _ := p.Allocate(); a != v4 || b != v6 || p.InUse() != 1 {
		t.Fatalf("after the release Allocate = %s, %s (in use %d); want %s, %s", a, b, p.InUse(), v4, v6)
	}
}
