// Package dataplane_test runs the data plane in kernel TUN mode: two network
// namespaces joined by a veth pair with 198.18.0.0/15 addresses, one node in
// each with a real TUN interface, and plain sockets between the mesh
// addresses, as unmodified apps would use them.
package dataplane_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	harness.Main(m)
}

var meshPrefixes = "100.64.0.0/10,fd7a:6d65:7368::/48"

func TestTUNModePlainSocketsBetweenNamespaces(t *testing.T) {
	ipCmd := needTUN(t)
	nsA, nsB := makeNamespacePair(t, ipCmd, "198.18.5.1", "198.18.5.2")

	a := startHelper(t, ipCmd, nsA, "a", "100.64.0.1", "fd7a:6d65:7368::1")
	b := startHelper(t, ipCmd, nsB, "b", "100.64.0.2", "fd7a:6d65:7368::2")
	a.do(t, "PEER %s 100.64.0.2 fd7a:6d65:7368::2 198.18.5.2:%d", b.pub, b.port)
	b.do(t, "PEER %s 100.64.0.1 fd7a:6d65:7368::1 198.18.5.1:%d", a.pub, a.port)

	// The interface carries the mesh addresses and the mesh routes.
	addrs := run(t, ipCmd, "-n", nsA, "addr", "show", "dev", "mesh0")
	for _, want := range []string{"100.64.0.1/32", "fd7a:6d65:7368::1/128", "UP"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("mesh0 in %s lacks %q:\n%s", nsA, want, addrs)
		}
	}
	routes := run(t, ipCmd, "-n", nsA, "route", "show") + run(t, ipCmd, "-n", nsA, "-6", "route", "show")
	for _, want := range []string{"100.64.0.0/10 dev mesh0", "fd7a:6d65:7368::/48 dev mesh0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("%s routes lack %q:\n%s", nsA, want, routes)
		}
	}

	// Plain listeners and dials on the mesh addresses, both ways, v4 and v6.
	a.do(t, "SERVE 7001")
	b.do(t, "SERVE 7002")
	for _, c := range []struct {
		from   *helper
		target string
		want   string
	}{
		{b, "100.64.0.1:7001", "a"},
		{a, "100.64.0.2:7002", "b"},
		{b, "[fd7a:6d65:7368::1]:7001", "a"},
		{a, "[fd7a:6d65:7368::2]:7002", "b"},
	} {
		got := c.from.send(t, "ECHO %s", c.target)
		if got != "OK "+c.want+": ping" {
			t.Errorf("plain dial to %s: %q", c.target, got)
		}
	}
	if got := a.send(t, "STATUS"); got != "HANDSHAKE yes" {
		t.Errorf("a's peer status: %q", got)
	}

	// Closing the device removes the interface with it.
	a.stop(t)
	harness.Eventually(t, 5*time.Second, "mesh0 gone from "+nsA, func() (bool, string) {
		out, err := exec.Command(ipCmd, "-n", nsA, "link", "show", "mesh0").CombinedOutput()
		return err != nil, string(out)
	})
}

// needTUN gates a TUN test (root, /dev/net/tun) and returns ip(8).
func needTUN(t *testing.T) string {
	t.Helper()
	harness.Integration(t)
	ipCmd := harness.LookPath(t, "ip")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		harness.Missing(t, "/dev/net/tun")
	}
	return ipCmd
}

// makeNamespacePair creates two namespaces joined by a veth pair with the
// given addresses (/24), removed when the test ends.
func makeNamespacePair(t *testing.T, ipCmd, addrA, addrB string) (string, string) {
	t.Helper()
	id := strconv.Itoa(os.Getpid())
	nsA, nsB := "mdp-a-"+id, "mdp-b-"+id
	vethA, vethB := "mdpa"+id, "mdpb"+id
	if len(vethA) > 15 {
		vethA, vethB = vethA[:15], vethB[:15]
	}
	t.Cleanup(func() {
		exec.Command(ipCmd, "netns", "del", nsA).Run()
		exec.Command(ipCmd, "netns", "del", nsB).Run()
	})
	run(t, ipCmd, "netns", "add", nsA)
	run(t, ipCmd, "netns", "add", nsB)
	run(t, ipCmd, "link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB)
	for _, s := range []struct{ ns, dev, addr string }{{nsA, vethA, addrA}, {nsB, vethB, addrB}} {
		run(t, ipCmd, "-n", s.ns, "addr", "add", s.addr+"/24", "dev", s.dev)
		run(t, ipCmd, "-n", s.ns, "link", "set", s.dev, "up")
		run(t, ipCmd, "-n", s.ns, "link", "set", "lo", "up")
	}
	return nsA, nsB
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ---- the node process, run inside a namespace ----

const helperEnv = "MESHINIT_DATAPLANE_TUN_HELPER"

// helper is a node process in a namespace, driven line by line over stdin.
type helper struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	pub  string
	port int
}

func startHelper(t *testing.T, ipCmd, ns, name, v4, v6 string) *helper {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ipCmd, "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "DP_ADDRS="+v4+","+v6, "DP_NAME="+name)
	cmd.Stderr = &testWriter{t: t, prefix: ns + ": "}
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	t.Cleanup(func() { h.stop(t) })
	var first string
	if first, err = h.line(); err != nil {
		t.Fatalf("node in %s did not start: %v", ns, err)
	}
	if _, err := fmt.Sscanf(first, "UP %s %d", &h.pub, &h.port); err != nil {
		t.Fatalf("node in %s: %q", ns, first)
	}
	return h
}

func (h *helper) line() (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := h.out.ReadString('\n')
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("no answer within 30s")
	}
}

func (h *helper) send(t *testing.T, format string, args ...any) string {
	t.Helper()
	if _, err := fmt.Fprintf(h.in, format+"\n", args...); err != nil {
		t.Fatalf("to node: %v", err)
	}
	s, err := h.line()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	return s
}

// do sends a command that must succeed: the node answers OK.
func (h *helper) do(t *testing.T, format string, args ...any) {
	t.Helper()
	if got := h.send(t, format, args...); got != "OK" {
		t.Fatalf("%s: %s", fmt.Sprintf(format, args...), got)
	}
}

func (h *helper) stop(t *testing.T) {
	if h.cmd.ProcessState != nil {
		return
	}
	h.in.Close() // EOF: the node closes its device and exits
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
		t.Errorf("node did not exit on EOF")
	}
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runHelper is the node: a TUN-mode device driven by stdin commands.
func runHelper() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	var addrs []netip.Addr
	for _, s := range strings.Split(os.Getenv("DP_ADDRS"), ",") {
		addrs = append(addrs, netip.MustParseAddr(s))
	}
	var prefixes []netip.Prefix
	for _, s := range strings.Split(meshPrefixes, ",") {
		prefixes = append(prefixes, netip.MustParsePrefix(s))
	}
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		return fail(err)
	}
	cfg := dataplane.Config{PrivateKey: priv, Addresses: addrs, Prefixes: prefixes, Mode: dataplane.TUN, TUNName: "mesh0"}
	if url := os.Getenv("DP_RELAY"); url != "" {
		cfg.Relay = &dataplane.RelayConfig{URL: url}
	}
	dev, err := dataplane.New(cfg)
	if err != nil {
		return fail(err)
	}
	defer dev.Close()
	pub := dev.PublicKey()
	fmt.Printf("UP %s %d\n", hex.EncodeToString(pub[:]), dev.ListenPort())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "PEER": // PEER hexkey ipv4 ipv6 endpoint
			var k meshapi.Key
			hex.Decode(k[:], []byte(f[1]))
			p := dataplane.Peer{
				PublicKey:  k,
				AllowedIPs: []netip.Prefix{netip.MustParsePrefix(f[2] + "/32"), netip.MustParsePrefix(f[3] + "/128")},
				Endpoints:  []netip.AddrPort{netip.MustParseAddrPort(f[4])},
			}
			reply(dev.UpsertPeer(p), "OK")
		case "SERVE": // SERVE port: plain echo listener on every address
			ln, err := net.Listen("tcp", ":"+f[1])
			if err == nil {
				go testnet.ServeListener(ln, testnet.EchoLines(os.Getenv("DP_NAME")))
			}
			reply(err, "OK")
		case "ECHO": // ECHO host:port: plain dial, one line
			reply(nil, echoOnce(f[1]))
		case "STATUS":
			hs := "no"
			for _, p := range dev.Peers() {
				if !p.LastHandshake.IsZero() {
					hs = "yes"
				}
			}
			fmt.Println("HANDSHAKE " + hs)
		}
	}
	return 0
}

func reply(err error, ok string) {
	if err != nil {
		fmt.Println("ERR " + strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Println(ok)
}

func echoOnce(target string) string {
	c, err := net.DialTimeout("tcp", target, 15*time.Second)
	if err != nil {
		return "ERR " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "ping\n")
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "ERR " + err.Error()
	}
	return "OK " + strings.TrimSpace(s)
}
