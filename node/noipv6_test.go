package node

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/dataplane"
)

// A TUN node registers with no_ipv6 exactly when the kernel will refuse
// IPv6 on its interface; a userspace node (a netstack always carries IPv6)
// never does, whatever the host's setting.
func TestRegistersWithoutIPv6OnlyInTUNModeWhereIPv6IsOff(t *testing.T) {
	for _, tc := range []struct {
		mode dataplane.Mode
		off  string
		want bool
	}{
		{dataplane.TUN, "net.ipv6.conf.default.disable_ipv6=1", true},
		{dataplane.TUN, "", false},
		{dataplane.Userspace, "net.ipv6.conf.default.disable_ipv6=1", false},
	} {
		asked := false
		old := tunIPv6Off
		tunIPv6Off = func(name string) string { asked = true; return tc.off }
		n := &Node{cfg: Config{Mode: tc.mode}, log: slog.New(slog.DiscardHandler)}
		got := n.registersWithoutIPv6()
		tunIPv6Off = old
		if got != tc.want {
			t.Errorf("mode %v, IPv6 off %q: registers without IPv6 = %v, want %v", tc.mode, tc.off, got, tc.want)
		}
		if tc.mode == dataplane.Userspace && asked {
			t.Errorf("a userspace node looked at the host's IPv6 setting")
		}
	}
}

// A peer registered with no_ipv6 (what a TUN node without IPv6 sends) is,
// to a normal node: a peer with an IPv4 address and none for IPv6 in its
// status and its name table, and a WireGuard peer whose allowed IPs are its
// /32 alone. The normal node keeps both of its own addresses.
func TestPeerWithoutIPv6HasNoIPv6Anywhere(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	a := startNode(t, co, key, "alpha")
	if st := a.Status(); !st.IPv4.IsValid() || !st.IPv6.IsValid() {
		t.Fatalf("a normal node's own addresses: %v, %v; want both", st.IPv4, st.IPv6)
	}

	cl, err := controlclient.New(co.URL, controlclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := cl.Register(ctx, controlclient.Registration{AuthKey: key, Hostname: "v4only",
		PublicKey: meshapi.Key{7}, NoIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Node.IPv6.IsValid() {
		t.Fatalf("registered with NoIPv6, got IPv6 %v", reg.Node.IPv6)
	}
	eventually(t, "alpha sees v4only", func() (bool, string) {
		for _, p := range a.Status().Peers {
			if p.Name == "v4only" {
				return p.IPv4 == reg.Node.IPv4 && !p.IPv6.IsValid(), p.IPv4.String() + " " + p.IPv6.String()
			}
		}
		return false, "not in alpha's peers"
	})
	e, ok := a.names.Lookup("v4only")
	if !ok || e.IPv4 != reg.Node.IPv4 || e.IPv6.IsValid() {
		t.Errorf("alpha's name table: %+v, %v; want %v and no IPv6", e, ok, reg.Node.IPv4)
	}
	a.mu.Lock()
	peer := a.peers[reg.Node.ID]
	a.mu.Unlock()
	if got := dataplanePeer(peer).AllowedIPs; !slices.Equal(got, []netip.Prefix{netip.PrefixFrom(reg.Node.IPv4, 32)}) {
		t.Errorf("allowed IPs of the IPv4-only peer: %v; want its /32 only", got)
	}
}
