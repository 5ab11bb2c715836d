package resolvconf_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/meshinit/meshinit/node/resolvconf"
)

// Point a resolv.conf at the mesh resolver, then put it back.
func Example() {
	dir, _ := os.MkdirTemp("", "resolvconf-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte("nameserver 198.18.0.10\noptions ndots:5\n"), 0o644)

	f, _ := resolvconf.Load(path)
	fmt.Println("upstreams:", f.Config.Nameservers)
	inst, _ := f.Install(netip.MustParseAddr("127.0.0.153"), "mesh.internal")
	now, _ := os.ReadFile(path)
	fmt.Println(resolvconf.Parse(now).Nameservers, resolvconf.Parse(now).Search)
	inst.Restore()
	back, _ := os.ReadFile(path)
	fmt.Printf("%q\n", back)
	// Output:
	// upstreams: [198.18.0.10]
	// [127.0.0.153] [mesh.internal]
	// "nameserver 198.18.0.10\noptions ndots:5\n"
}
