package dnsserver_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/meshinit/meshinit/node/dnsserver"
	"github.com/meshinit/meshinit/node/nametable"
)

// A resolver for one node's map; names that are not the mesh's would go to
// the upstreams (none here).
func Example() {
	var names nametable.Table
	names.Reset("mesh.internal", []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, []nametable.Entry{
		{ID: 2, Name: "web", IPv4: netip.MustParseAddr("100.64.0.2")},
	})
	srv, err := dnsserver.Listen("127.0.0.1:0", dnsserver.Config{Names: &names})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr().String())
	}}
	addrs, err := r.LookupHost(context.Background(), "web.mesh.internal")
	fmt.Println(addrs, err)
	// Output: [100.64.0.2] <nil>
}
