package relay_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// topology is the Internet in miniature, in network namespaces with
// 198.18.0.0/15 addresses only:
//
//	pub 198.18.0.1 (meshcoord) ─┐
//	                            ├─ bridge in wan (198.18.0.0/24)
//	natA 198.18.0.2 ────────────┤        natB 198.18.0.3
//	  │ masquerade              │          │ masquerade
//	siteA 198.18.1.2 (LAN .1)   └──────  siteB 198.18.2.2 (LAN .1)
//
// Each NAT router masquerades its site behind its WAN address (nftables;
// Linux's masquerade keeps a mapping per source address and port, i.e. it
// is endpoint-independent, and lets in only what answers it). Sites have a
// default route via their router and nothing else; nothing reaches the
// root namespace. The routers drop unsolicited inbound UDP.
type topology struct {
	t      *testing.T
	prefix string
	pub    string
	wan    string
	natA   string
	natB   string
	siteA  string
	siteB  string
}

const (
	coordIP = "198.18.0.1"
	natAWAN = "198.18.0.2"
	natBWAN = "198.18.0.3"
	natALAN = "198.18.1.1"
	siteAIP = "198.18.1.2"
	natBLAN = "198.18.2.1"
	siteBIP = "198.18.2.2"
)

func newTopology(t *testing.T) *topology {
	t.Helper()
	harness.LookPath(t, "ip")
	harness.LookPath(t, "nft")
	var b [3]byte
	rand.Read(b[:])
	p := "rl" + hex.EncodeToString(b[:])
	tp := &topology{t: t, prefix: p, pub: p + "pub", wan: p + "wan", natA: p + "na", natB: p + "nb", siteA: p + "sa", siteB: p + "sb"}
	t.Cleanup(tp.cleanup)
	for _, ns := range []string{tp.wan, tp.pub, tp.natA, tp.natB, tp.siteA, tp.siteB} {
		tp.ip("netns", "add", ns)
		tp.ipns(ns, "link", "set", "lo", "up")
	}
	tp.ipns(tp.wan, "link", "add", "br0", "type", "bridge")
	tp.ipns(tp.wan, "link", "set", "br0", "up")
	tp.plugWAN(tp.pub, "p", coordIP)
	tp.plugWAN(tp.natA, "a", natAWAN)
	tp.plugWAN(tp.natB, "b", natBWAN)
	tp.site(tp.natA, tp.siteA, "A", natALAN, siteAIP)
	tp.site(tp.natB, tp.siteB, "B", natBLAN, siteBIP)
	return tp
}

// plugWAN connects ns to the WAN bridge with addr/24 on its "wan" link.
func (tp *topology) plugWAN(ns, tag, addr string) {
	veth := tp.prefix + "w" + tag
	tp.ip("link", "add", veth, "netns", tp.wan, "type", "veth", "peer", "name", "wan", "netns", ns)
	tp.ipns(tp.wan, "link", "set", veth, "master", "br0", "up")
	tp.ipns(ns, "addr", "add", addr+"/24", "dev", "wan")
	tp.ipns(ns, "link", "set", "wan", "up")
}

// site puts host behind router nat: a LAN link, forwarding, masquerade.
func (tp *topology) site(nat, host, tag, natLAN, hostIP string) {
	veth := tp.prefix + "l" + tag
	tp.ip("link", "add", veth, "netns", nat, "type", "veth", "peer", "name", "eth0", "netns", host)
	tp.ipns(nat, "link", "set", veth, "name", "lan")
	tp.ipns(nat, "addr", "add", natLAN+"/24", "dev", "lan")
	tp.ipns(nat, "link", "set", "lan", "up")
	tp.ipns(host, "addr", "add", hostIP+"/24", "dev", "eth0")
	tp.ipns(host, "link", "set", "eth0", "up")
	tp.ipns(host, "route", "add", "default", "via", natLAN)
	tp.run("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.nft(nat, "add table ip nat")
	tp.nft(nat, "add chain ip nat post { type nat hook postrouting priority 100 ; }")
	tp.nft(nat, `add rule ip nat post oifname "wan" masquerade`)
	tp.nft(nat, "add table ip filt")
	tp.nft(nat, "add chain ip filt sitefw { type filter hook forward priority 0 ; policy accept ; }")
	// Unsolicited packets from outside are dropped, as a home router's
	// firewall does. Dropped before their conntrack entry is confirmed,
	// they leave no trace; otherwise an early ping from the other site
	// would leave an entry that clashes with our own mapping to it, and
	// masquerade would pick another port (endpoint-dependent after all).
	tp.nft(nat, "add chain ip filt in { type filter hook input priority 0 ; policy accept ; }")
	tp.nft(nat, `add rule ip filt in iifname "wan" ct state new meta l4proto udp drop`)
}

// dropUDPBetweenSites makes each router drop UDP to the other site's WAN
// address (STUN to the coordinator still passes).
func (tp *topology) dropUDPBetweenSites() {
	tp.nft(tp.natA, "add rule ip filt sitefw ip daddr "+natBWAN+" meta l4proto udp drop")
	tp.nft(tp.natB, "add rule ip filt sitefw ip daddr "+natAWAN+" meta l4proto udp drop")
}

// onlyProxyOut makes site A's router forward nothing: the site reaches the
// world only through a proxy on the router.
func (tp *topology) onlyProxyOut() {
	tp.nft(tp.natA, `add rule ip filt sitefw iifname "lan" drop`)
}

func (tp *topology) nft(ns, rule string) {
	tp.t.Helper()
	tp.run("ip", append([]string{"netns", "exec", ns, "nft"}, strings.Fields(rule)...)...)
}

func (tp *topology) ip(args ...string) { tp.t.Helper(); tp.run("ip", args...) }

func (tp *topology) ipns(ns string, args ...string) {
	tp.t.Helper()
	tp.run("ip", append([]string{"-n", ns}, args...)...)
}

func (tp *topology) run(name string, args ...string) string {
	tp.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tp *topology) cleanup() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, tp.prefix) {
			if err := exec.Command("ip", "netns", "delete", name).Run(); err != nil {
				tp.t.Logf("removing namespace %s: %v", name, err)
			}
		}
	}
}

func (tp *topology) String() string { return fmt.Sprintf("topology %s", tp.prefix) }
