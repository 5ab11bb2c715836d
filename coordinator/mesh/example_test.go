package mesh_test

import (
	"fmt"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// printer is a Listener that prints what it hears.
type printer struct{}

func (printer) NodeAdded(n *mesh.Node) { fmt.Println("added", n.Name, n.IPv4) }
func (printer) NodeChanged(n *mesh.Node, before *meshapi.Node) {
	fmt.Println("changed", n.Name, "online", before.Online, "->", n.Online)
}
func (printer) NodeRemoved(n *mesh.Node)     { fmt.Println("removed", n.Name) }
func (printer) PolicyChanged(p *mesh.Policy) {}

// A command makes its change as store ops; the listener hears the effects;
// a second mesh that applies the ops follows the first.
func Example() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := mesh.Config{BaseDomain: "mesh.internal", EphemeralTimeout: time.Minute, ReconnectGrace: 5 * time.Second}
	snap := &store.Snapshot{Meta: map[string]string{mesh.MetaULA: "fd01:2:3::/48"}}
	m, _, _ := mesh.Load(cfg, snap, time.Time{}, now, printer{})

	k, _ := authkey.New()
	_, keyChange := m.CreateKey(store.KeyRecord{ID: k.ID, Hash: k.Hash(), Reusable: true, Created: now}, now)
	_, secret := authkey.NewNodeSecret()
	n, _, regChange, _ := m.Register(&mesh.Registration{Key: k, Hostname: "Web_1", PublicKey: meshapi.Key{1}, SecretHash: secret}, now)
	online := m.Connect(n, "", now)
	fmt.Println(len(regChange), "ops to store for the registration; next event", m.LastEvent()+1)

	follower, _, _ := mesh.Load(cfg, &store.Snapshot{Meta: map[string]string{mesh.MetaULA: "fd01:2:3::/48"}}, time.Time{}, now, printer{})
	for _, ch := range []mesh.Change{keyChange, regChange, online} {
		if err := follower.Apply(ch); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(follower.NodeByName("web-1").Online)
	// Output:
	// added web-1 100.64.0.1
	// changed web-1 online false -> true
	// 4 ops to store for the registration; next event 3
	// added web-1 100.64.0.1
	// changed web-1 online false -> true
	// true
}
