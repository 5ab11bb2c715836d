package nametable_test

import (
	"fmt"
	"net/netip"

	"github.com/meshinit/meshinit/node/nametable"
)

func ExampleTable_Resolve() {
	var t nametable.Table
	t.Reset("mesh.internal", []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, []nametable.Entry{
		{ID: 2, Name: "web", IPv4: netip.MustParseAddr("100.64.0.2")},
	})
	for _, host := range []string{"web", "web.mesh.internal.", "100.64.0.9", "example.com", "db.mesh.internal"} {
		addr, mesh, err := t.Resolve(host)
		switch {
		case err != nil:
			fmt.Printf("%-20s error: %v\n", host, err)
		case mesh:
			fmt.Printf("%-20s mesh %v\n", host, addr)
		default:
			fmt.Printf("%-20s normal network\n", host)
		}
	}
	// Output:
	// web                  mesh 100.64.0.2
	// web.mesh.internal.   mesh 100.64.0.2
	// 100.64.0.9           mesh 100.64.0.9
	// example.com          normal network
	// db.mesh.internal     error: destination "db.mesh.internal": no such node in the mesh
}
