package mesh

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// Two hosts that share no loopback (network namespaces on a private LAN):
// each runs meshinit with an HTTP server on its own 127.0.0.1:8080, and
// each reaches the other's server by mesh name through its local proxy
// (HTTP proxy one way, SOCKS5 the other); the connection arrives over the
// mesh and is forwarded to the server's localhost. A third host joins later
// and is reachable both ways without restarting the others. alpha and beta
// forward port 8080 only; gamma forwards everything by default (MESH_FORWARD
// unset means all); delta forwards nothing (MESH_FORWARD=off).
func TestHostsExchangeHTTPOverTheMesh(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordURL := "http://" + l.relayIntoHub(c.Addr)

	start := func(name string, env ...string) (*meshinit, string) {
		ns, _ := l.addHost()
		m := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: name, netns: ns,
			env:     append([]string{"MESH_PROXY=127.0.0.1:1055"}, env...),
			command: []string{demo(t), "serve", "-listen", "127.0.0.1:8080", "-message", "hello"}})
		begin := time.Now()
		m.waitUp()
		m.waitOutput("serving on")
		t.Logf("%s up in %v", name, time.Since(begin))
		return m, ns
	}
	_, nsA := start("alpha", "MESH_FORWARD=8080")
	_, nsB := start("beta", "MESH_FORWARD=8080")

	expect := func(ns, via, url, from string) {
		t.Helper()
		begin := time.Now()
		out, err := get(t, ns, via, url, 10*time.Second)
		t.Logf("GET %s via %s: %v", url, via, time.Since(begin))
		if err != nil || !strings.Contains(out, "hello from "+from) {
			t.Fatalf("GET %s via %s from %s: %q, %v", url, via, ns, out, err)
		}
	}
	expect(nsA, "http", "http://beta:8080/", "beta.mesh.internal")
	expect(nsB, "socks", "http://alpha.mesh.internal:8080/", "alpha.mesh.internal")
	// Without the mesh the other host's localhost server is out of reach.
	if out, err := get(t, nsA, "none", "http://198.18.0.11:8080/", 0); err == nil {
		t.Fatalf("beta's localhost server answered over the LAN (%q): the test would not prove the mesh carried the request", out)
	}

	_, nsC := start("gamma")
	expect(nsA, "http", "http://gamma.mesh.internal.:8080/", "gamma.mesh.internal")
	expect(nsC, "socks", "http://beta:8080/", "beta.mesh.internal")
	expect(nsC, "http", "http://alpha:8080/", "alpha.mesh.internal")

	_, nsD := start("delta", "MESH_FORWARD=off")
	// delta reaches alpha, so the tunnel between them is up: what follows
	// fails for want of forwarding, not of a handshake.
	expect(nsD, "http", "http://alpha:8080/", "alpha.mesh.internal")
	if out, err := get(t, nsA, "http", "http://delta:8080/", 2*time.Second); err == nil {
		t.Fatalf("delta forwards nothing, yet its localhost server answered over the mesh: %q", out)
	}
}

// MESH_NET=tun: a kernel interface carries the mesh addresses; unmodified
// apps connect to mesh addresses directly, without a proxy.
func TestTUNModeNeedsNoProxy(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordURL := "http://" + l.relayIntoHub(c.Addr)

	nsA, _ := l.addHost()
	_, stA := startTUNWeb(t, coordURL, key, "tuna", nsA, "0.0.0.0:8080")
	if stA.Net != "tun" || stA.Proxy != "" {
		t.Fatalf("status in TUN mode: net=%q proxy=%q", stA.Net, stA.Proxy)
	}
	nsB, _ := l.addHost()
	b := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "tunb", netns: nsB,
		env:     []string{"MESH_NET=tun"},
		command: []string{demo(t), "env"}})
	if code := b.wait(waitLimit); code != 0 {
		t.Fatalf("meshinit in TUN mode exited %d\nstderr:\n%s", code, b.stderr)
	}
	for _, line := range strings.Split(b.stdout.String(), "\n") {
		k, _, _ := strings.Cut(line, "=")
		if strings.HasSuffix(strings.ToUpper(k), "_PROXY") && k != "MESH_PROXY" {
			t.Fatalf("TUN mode set %s:\n%s", k, b.stdout)
		}
	}
	if !strings.Contains(b.stdout.String(), "MESH_NAME=tunb.mesh.internal") {
		t.Fatalf("TUN mode: no MESH_NAME:\n%s", b.stdout)
	}

	c2 := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "tunc", netns: nsB,
		env:     []string{"MESH_NET=tun"},
		command: []string{demo(t), "hang"}})
	c2.waitUp()
	out, err := get(t, nsB, "none", "http://"+stA.IPv4.String()+":8080/", 10*time.Second)
	if err != nil || !strings.Contains(out, "hello from tuna.mesh.internal") {
		t.Fatalf("no answer from tuna's mesh address through the TUN device: %q, %v", out, err)
	}

	// After "meshinit logout" the app runs on without the mesh. The TUN
	// interface stays, without peers, so a mesh address still routes into
	// it and never onto the LAN (this namespace has no other route for it).
	if out, err := c2.cli("logout"); err != nil {
		t.Fatalf("meshinit logout: %v\n%s", err, out)
	}
	ip := harness.LookPath(t, "ip")
	route, err := exec.Command(ip, "netns", "exec", nsB, ip, "-o", "route", "get", stA.IPv4.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("after logout, no route for a mesh address: %v\n%s", err, route)
	}
	fields := strings.Fields(string(route))
	dev := ""
	for i, f := range fields {
		if f == "dev" && i+1 < len(fields) {
			dev = fields[i+1]
		}
	}
	link, err := exec.Command(ip, "netns", "exec", nsB, ip, "-o", "-d", "link", "show", "dev", dev).CombinedOutput()
	if err != nil || !strings.Contains(string(link), " tun ") {
		t.Fatalf("after logout, mesh addresses route via %q, not the TUN device: %s %v", route, link, err)
	}
	if out, err := get(t, nsB, "none", "http://"+stA.IPv4.String()+":8080/", time.Second); err == nil {
		t.Fatalf("after logout tuna still answered: %q", out)
	}
}

// startTUNWeb starts a TUN-mode node on the host ns whose command is an
// HTTP server listening on listen, and returns once the node is up and the
// server serves, with the node's status.
func startTUNWeb(t *testing.T, coordURL, key, hostname, ns, listen string) (*meshinit, ctlsock.Status) {
	t.Helper()
	m := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: hostname, netns: ns,
		env:     []string{"MESH_NET=tun"},
		command: []string{demo(t), "serve", "-listen", listen}})
	st := m.waitUp()
	m.waitOutput("serving on")
	return m, st
}
