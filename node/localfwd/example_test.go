package localfwd_test

import (
	"context"
	"fmt"
	"net"

	"github.com/meshinit/meshinit/node/localfwd"
)

// Parse a MESH_CONNECT value, listen, and forward through a dial function
// (the node's DialMesh in meshinit; here one that finds nobody in the map).
func Example() {
	rules, err := localfwd.Parse("0:db:5432")
	fmt.Println(err)
	rules, err = localfwd.Parse("15432:db:5432,16379:cache.mesh.internal:6379")
	fmt.Println(rules, err)

	f, err := localfwd.Listen([]localfwd.Rule{{Local: 0, Remote: rules[0].Remote}}) // a free port
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	f.Serve(func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, fmt.Errorf("%s: not in the map", address)
	}, nil)
	c, _ := net.Dial("tcp", f.Addrs()[0].String())
	_, err = c.Read(make([]byte, 1))
	fmt.Println(err) // closed at once: the peer is not in the map
	// Output:
	// entry "0:db:5432": local port: "0" is not a port (want 1 to 65535)
	// [15432:db:5432 16379:cache.mesh.internal:6379] <nil>
	// EOF
}
