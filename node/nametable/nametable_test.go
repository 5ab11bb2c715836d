package nametable

import (
	"errors"
	"net/netip"
	"testing"
)

var (
	v4Range = netip.MustParsePrefix("100.64.0.0/10")
	v6Range = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

func testTable() *Table {
	var t Table
	t.Reset("mesh.internal.", []netip.Prefix{v4Range, v6Range}, []Entry{
		{ID: 1, Name: "self", IPv4: netip.MustParseAddr("100.64.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::1")},
		{ID: 2, Name: "web", IPv4: netip.MustParseAddr("100.64.0.2"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::2")},
	})
	return &t
}

func TestResolveNamesGoOverTheMesh(t *testing.T) {
	tb := testTable()
	for _, host := range []string{"web", "WEB", "web.mesh.internal", "web.mesh.internal.", "Web.Mesh.Internal", "self"} {
		addr, mesh, err := tb.Resolve(host)
		if err != nil || !mesh || !addr.IsValid() {
			t.Errorf("Resolve(%q) = %v, %v, %v; want a mesh address", host, addr, mesh, err)
		}
	}
	if addr, _, _ := tb.Resolve("web.mesh.internal."); addr != netip.MustParseAddr("100.64.0.2") {
		t.Errorf("web resolved to %v, want its IPv4 100.64.0.2", addr)
	}
}

func TestResolveMeshAddressesGoOverTheMesh(t *testing.T) {
	tb := testTable()
	for _, host := range []string{"100.64.0.2", "100.100.1.1", "fd7a:115c:a1e0::2", "[fd7a:115c:a1e0::9]", "::ffff:100.64.0.2"} {
		if _, mesh, err := tb.Resolve(host); err != nil || !mesh {
			t.Errorf("Resolve(%q): mesh=%v err=%v, want mesh", host, mesh, err)
		}
	}
}

func TestResolveEverythingElseGoesDirect(t *testing.T) {
	tb := testTable()
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "example.test", "db", "web.other.internal", "198.18.0.1"} {
		addr, mesh, err := tb.Resolve(host)
		if err != nil || mesh || addr.IsValid() && !addr.IsLoopback() && addr != netip.MustParseAddr("198.18.0.1") {
			t.Errorf("Resolve(%q) = %v, %v, %v; want the normal network", host, addr, mesh, err)
		}
	}
}

func TestResolveUnknownNameUnderMeshDomainIsAnError(t *testing.T) {
	tb := testTable()
	for _, host := range []string{"nope.mesh.internal", "mesh.internal", "a.web.mesh.internal"} {
		if _, mesh, err := tb.Resolve(host); !errors.Is(err, ErrNoSuchNode) || mesh {
			t.Errorf("Resolve(%q): mesh=%v err=%v, want ErrNoSuchNode", host, mesh, err)
		}
	}
}

func TestUpsertRenameAndRemove(t *testing.T) {
	tb := testTable()
	tb.Upsert(Entry{ID: 2, Name: "web-new", IPv4: netip.MustParseAddr("100.64.0.2")})
	if _, mesh, _ := tb.Resolve("web"); mesh {
		t.Error("old name still resolves after a rename")
	}
	if _, mesh, _ := tb.Resolve("web-new"); !mesh {
		t.Error("new name does not resolve after a rename")
	}
	tb.Upsert(Entry{ID: 3, Name: "late", IPv4: netip.MustParseAddr("100.64.0.3")})
	if e, ok := tb.Lookup("late.mesh.internal."); !ok || e.ID != 3 {
		t.Errorf("Lookup(late) = %+v, %v", e, ok)
	}
	tb.Remove(3)
	if _, ok := tb.Lookup("late"); ok {
		t.Error("removed node still resolves")
	}
	if _, _, err := tb.Resolve("late.mesh.internal"); !errors.Is(err, ErrNoSuchNode) {
		t.Errorf("removed node's FQDN: err=%v, want ErrNoSuchNode", err)
	}
	if tb.Len() != 2 {
		t.Errorf("Len = %d, want 2", tb.Len())
	}
}

func TestNameTakenOverByAnotherNodeSurvivesOldRemoval(t *testing.T) {
	tb := testTable()
	// the coordinator frees "web" (node 2 deleted) and gives it to node 4;
	// the upsert of 4 may arrive before the removal of 2.
	tb.Upsert(Entry{ID: 4, Name: "web", IPv4: netip.MustParseAddr("100.64.0.4")})
	tb.Remove(2)
	if addr, mesh, _ := tb.Resolve("web"); !mesh || addr != netip.MustParseAddr("100.64.0.4") {
		t.Errorf("web = %v mesh=%v, want node 4's address", addr, mesh)
	}
}

func TestZeroTable(t *testing.T) {
	var tb Table
	if _, mesh, err := tb.Resolve("example.test"); mesh || err != nil {
		t.Errorf("empty table: mesh=%v err=%v", mesh, err)
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"web", "web.mesh.internal.", "100.64.0.2", "[::1]", "", ".", "..", "mesh.internal", "a.b.c.d.e", "WEB.MESH.INTERNAL", "\x00", "[fd7a::1"} {
		f.Add(s)
	}
	tb := testTable()
	f.Fuzz(func(t *testing.T, host string) {
		addr, mesh, err := tb.Resolve(host)
		if err != nil && mesh {
			t.Fatalf("Resolve(%q): error and mesh at once", host)
		}
		if mesh && !tb.InMesh(addr) {
			t.Fatalf("Resolve(%q) = %v, mesh but outside the mesh ranges", host, addr)
		}
	})
}

func TestDomainAndLookupAddr(t *testing.T) {
	tb := testTable()
	if d := tb.Domain(); d != "mesh.internal" {
		t.Errorf("Domain() = %q, want mesh.internal", d)
	}
	for _, a := range []string{"100.64.0.2", "fd7a:115c:a1e0::2", "::ffff:100.64.0.2"} {
		if e, ok := tb.LookupAddr(netip.MustParseAddr(a)); !ok || e.Name != "web" {
			t.Errorf("LookupAddr(%s) = %+v, %v; want web", a, e, ok)
		}
	}
	if e, ok := tb.LookupAddr(netip.MustParseAddr("100.64.0.9")); ok {
		t.Errorf("LookupAddr of an unused address found %+v", e)
	}
	var zero Table
	if zero.Domain() != "" {
		t.Error("zero table has a domain")
	}
}
