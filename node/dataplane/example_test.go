package dataplane_test

import (
	"context"
	"log"
	"net/netip"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane"
)

// A userspace node: create the device, add a peer from the map, forward
// inbound connections to local listeners and dial a peer.
func ExampleNew() {
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		log.Fatal(err)
	}
	dev, err := dataplane.New(dataplane.Config{
		PrivateKey: priv,
		Addresses:  []netip.Addr{netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("fd7a:6d65:7368::1")},
		Prefixes:   []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("fd7a:6d65:7368::/48")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()

	peerKey, err := meshapi.ParseKey("ar+AhmMyzHw7G4HFAAE9aw/chrX+q76wa6T2hSCbCmM=") // from the map
	if err != nil {
		log.Fatal(err)
	}
	err = dev.UpsertPeer(dataplane.Peer{
		PublicKey:  peerKey,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32"), netip.MustParsePrefix("fd7a:6d65:7368::2/128")},
		Endpoints:  []netip.AddrPort{netip.MustParseAddrPort("198.18.0.2:41641")},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := dev.Forward(nil); err != nil { // every port, to 127.0.0.1
		log.Fatal(err)
	}
	conn, err := dev.DialContext(context.Background(), "tcp", "100.64.0.2:80")
	if err == nil {
		conn.Close()
	}
}
