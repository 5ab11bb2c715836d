package controlclient_test

import (
	"fmt"
	"net/netip"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
)

// A full map, then deltas: each Apply says which peers to add, change or
// drop, so a data plane is updated one peer at a time.
func ExampleNetMap_Apply() {
	var m controlclient.NetMap
	web := meshapi.Peer{ID: 2, Name: "web", IPv4: netip.MustParseAddr("100.64.0.2")}
	db := meshapi.Peer{ID: 3, Name: "db", IPv4: netip.MustParseAddr("100.64.0.3")}
	msgs := []meshapi.MapMessage{
		{Type: meshapi.MsgFull, Version: 10, Epoch: "e", Self: &meshapi.Node{ID: 1, Name: "me"}, Peers: []meshapi.Peer{web}},
		{Type: meshapi.MsgUpsert, Version: 11, Peers: []meshapi.Peer{db}},
		{Type: meshapi.MsgRemove, Version: 12, Removed: []meshapi.NodeID{2}},
		{Type: meshapi.MsgRemove, Version: 12, Removed: []meshapi.NodeID{3}}, // replayed after a resume: skipped
	}
	for _, msg := range msgs {
		c, err := m.Apply(&msg)
		fmt.Printf("%-8s v%d: full=%v upserted=%d removed=%v err=%v\n", msg.Type, m.Version, c.Full, len(c.Upserted), c.Removed, err)
	}
	fmt.Println("peers:", len(m.Peers))
	// Output:
	// full     v10: full=true upserted=1 removed=[] err=<nil>
	// upsert   v11: full=false upserted=1 removed=[] err=<nil>
	// remove   v12: full=false upserted=0 removed=[2] err=<nil>
	// remove   v12: full=false upserted=0 removed=[] err=<nil>
	// peers: 1
}
