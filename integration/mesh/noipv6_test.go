package mesh

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
)

// TUN mode where IPv6 is disabled in the network namespace, as Docker
// leaves a container on a network without IPv6: the node comes up
// IPv4-only, says so in one log line, its interface carries only the IPv4
// mesh address and route, MESH_IPV6 is left out of the app's environment,
// and its resolver answers mesh names with A records only (AAAA: NODATA).
// A plain client (curl, which knows nothing of the mesh) reaches the other
// IPv4-only node by name.
func TestTUNModeWithoutIPv6ComesUpIPv4Only(t *testing.T) {
	harness.Integration(t)
	l, coordURL, key := meshOnLAN(t)

	nsA, _ := l.addHost()
	disableIPv6(t, nsA)
	a, stA := startTUNWeb(t, coordURL, key, "tuna", nsA, "0.0.0.0:8080")
	if n := strings.Count(a.stderr.String(), ipv4OnlyLog); n != 1 {
		t.Errorf("%q logged %d times, want once:\n%s", ipv4OnlyLog, n, a.stderr)
	}

	addrs := ipIn(t, nsA, "addr", "show", "dev", "mesh0")
	if !strings.Contains(addrs, stA.IPv4.String()+"/32") || strings.Contains(addrs, "inet6") {
		t.Errorf("mesh0 should carry %v and no IPv6 address:\n%s", stA.IPv4, addrs)
	}
	if routes := ipIn(t, nsA, "route", "show"); !strings.Contains(routes, "100.64.0.0/10 dev mesh0") {
		t.Errorf("no IPv4 mesh route into mesh0:\n%s", routes)
	}

	nsB, _ := l.addHost()
	disableIPv6(t, nsB)
	b := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "tunb", netns: nsB,
		env: []string{"MESH_NET=tun"}, command: []string{demo(t), "env"}})
	if code := b.wait(waitLimit); code != 0 {
		t.Fatalf("meshinit in TUN mode without IPv6 exited %d\nstderr:\n%s", code, b.stderr)
	}
	env := b.stdout.String()
	if !strings.Contains(env, "MESH_IPV4=100.") || strings.Contains(env, "MESH_IPV6") {
		t.Errorf("the app's environment without IPv6: want MESH_IPV4 and no MESH_IPV6:\n%s", env)
	}

	c := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "tunc", netns: nsB,
		env: []string{"MESH_NET=tun"}})
	c.waitUp()
	c.waitPeer("tuna", true)
	for _, name := range []string{"tuna", "tuna.mesh.internal"} {
		if g, err := c.getentAddrs(name); err != nil || !slices.Equal(g, []string{stA.IPv4.String()}) {
			t.Errorf("getent ahosts %s: %v, %v; want only %v", name, g, err, stA.IPv4)
		}
	}
	m := queryInNetns(t, nsB, "tuna.mesh.internal.", dnsmessage.TypeAAAA)
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Errorf("AAAA tuna.mesh.internal: %v with %d answers; want NODATA (NOERROR, none)", m.RCode, len(m.Answers))
	}
	out, err := c.run(harness.LookPath(t, "curl"), "-sS", "--max-time", "10", "http://tuna:8080/")
	if err != nil || !strings.Contains(out, "hello from tuna.mesh.internal") {
		t.Errorf("curl http://tuna:8080/: %q, %v", out, err)
	}
}

// ipv4OnlyLog is the one line a TUN node logs when it comes up without IPv6.
const ipv4OnlyLog = "IPv6 is disabled here: the TUN interface carries the IPv4 mesh address only"

// disableIPv6 turns IPv6 off in the network namespace ns, for the
// interfaces it has and the ones created later, as Docker does for a
// container on a network without IPv6.
func disableIPv6(t *testing.T, ns string) {
	t.Helper()
	for _, key := range []string{"all", "default"} {
		out, err := exec.Command(harness.LookPath(t, "ip"), "netns", "exec", ns, "sh", "-c",
			"echo 1 > /proc/sys/net/ipv6/conf/"+key+"/disable_ipv6").CombinedOutput()
		if err != nil {
			t.Fatalf("disabling IPv6 (%s) in %s: %v\n%s", key, ns, err, out)
		}
	}
}

// ipIn runs "ip -n ns args..." and returns its output.
func ipIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command(harness.LookPath(t, "ip"), append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The IPv4-only node as its peers see it. A TUN node where IPv6 is
// disabled tells the coordinator so when it registers, and the coordinator
// gives it no IPv6 address: "meshcoord nodes list --json" shows none, a
// peer that has IPv6 lists it without one in its status, the peer's
// resolver answers its A record and no AAAA (NODATA), and getent there
// gives only its IPv4 address, which curl reaches by name. A normal node
// keeps both addresses in the same peer's eyes, and is reached over IPv6
// by name.
func TestIPv4OnlyTUNNodeAsItsPeersSeeIt(t *testing.T) {
	harness.Integration(t)
	co := coordtest.Start(t, coordtest.Options{})
	key := co.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordURL := "http://" + l.relayIntoHub(co.Addr)

	nsA, _ := l.addHost()
	disableIPv6(t, nsA)
	_, stA := startTUNWeb(t, coordURL, key, "tuna", nsA, "0.0.0.0:8080")
	if !stA.IPv4.IsValid() || stA.IPv6.IsValid() {
		t.Errorf("the IPv4-only node's own status: ipv4 %v, ipv6 %v; want an IPv4 address only", stA.IPv4, stA.IPv6)
	}

	nsF, _ := l.addHost()
	_, stF := startTUNWeb(t, coordURL, key, "full", nsF, "[::]:8080")
	if !stF.IPv4.IsValid() || !stF.IPv6.IsValid() {
		t.Fatalf("a normal TUN node's own status: ipv4 %v, ipv6 %v; want both", stF.IPv4, stF.IPv6)
	}

	// The coordinator's own account.
	var listed []map[string]any
	if out := co.CLI(t, "nodes", "list", "--json"); json.Unmarshal(out, &listed) != nil {
		t.Fatalf("nodes list --json printed %q", out)
	}
	for _, n := range listed {
		v6, has := n["ipv6"]
		switch n["name"] {
		case "tuna":
			if has {
				t.Errorf("nodes list --json: tuna has ipv6 %v; want none", v6)
			}
		case "full":
			if v6 != stF.IPv6.String() {
				t.Errorf("nodes list --json: full has ipv6 %v; want %v", v6, stF.IPv6)
			}
		}
	}

	nsP, _ := l.addHost()
	p := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "peer", netns: nsP,
		env: []string{"MESH_NET=tun"}})
	p.waitUp()
	p.waitPeer("tuna", true)
	p.waitPeer("full", true)
	st, err := p.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Peers {
		switch ps.Name {
		case "tuna":
			if ps.IPv4 != stA.IPv4 || ps.IPv6.IsValid() {
				t.Errorf("the peer's status lists tuna with %v and %v; want %v and no IPv6", ps.IPv4, ps.IPv6, stA.IPv4)
			}
		case "full":
			if ps.IPv4 != stF.IPv4 || ps.IPv6 != stF.IPv6 {
				t.Errorf("the peer's status lists full with %v and %v; want %v and %v", ps.IPv4, ps.IPv6, stF.IPv4, stF.IPv6)
			}
		}
	}

	// The peer's resolver, asked directly and through getent.
	if m := queryInNetns(t, nsP, "tuna.mesh.internal.", dnsmessage.TypeAAAA); m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Errorf("the peer's resolver, AAAA tuna.mesh.internal: %v with %d answers; want NODATA (NOERROR, none)", m.RCode, len(m.Answers))
	}
	if m := queryInNetns(t, nsP, "tuna.mesh.internal.", dnsmessage.TypeA); len(m.Answers) != 1 ||
		m.Answers[0].Body.(*dnsmessage.AResource).A != stA.IPv4.As4() {
		t.Errorf("the peer's resolver, A tuna.mesh.internal: %+v; want %v", m.Answers, stA.IPv4)
	}
	if m := queryInNetns(t, nsP, "full.mesh.internal.", dnsmessage.TypeAAAA); len(m.Answers) != 1 ||
		m.Answers[0].Body.(*dnsmessage.AAAAResource).AAAA != stF.IPv6.As16() {
		t.Errorf("the peer's resolver, AAAA full.mesh.internal: %+v; want %v", m.Answers, stF.IPv6)
	}
	if g, err := p.getentAddrs("tuna"); err != nil || !slices.Equal(g, []string{stA.IPv4.String()}) {
		t.Errorf("getent ahosts tuna on the peer: %v, %v; want only %v", g, err, stA.IPv4)
	}
	if g, err := p.getentAddrs("full"); err != nil || !slices.Equal(g, addrsOf(stF)) {
		t.Errorf("getent ahosts full on the peer: %v, %v; want %v", g, err, addrsOf(stF))
	}

	curl := harness.LookPath(t, "curl")
	if out, err := p.run(curl, "-sS", "--max-time", "10", "http://tuna:8080/"); err != nil || !strings.Contains(out, "hello from tuna.mesh.internal") {
		t.Errorf("curl http://tuna:8080/ from the peer: %q, %v", out, err)
	}
	if out, err := p.run(curl, "-6", "-sS", "--max-time", "10", "http://full:8080/"); err != nil || !strings.Contains(out, "hello from full.mesh.internal") {
		t.Errorf("curl -6 http://full:8080/ from the peer: %q, %v", out, err)
	}
}
