package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/netns"
)

// lan is a private network for nodes that must not share a loopback: a
// hub network namespace holding a bridge at 198.18.0.1/24, and one network
// namespace per host wired to it (198.18.0.10, .11, ...). The bridge lives in
// the hub, not in the root namespace, so host firewall rules (a dockerd's
// FORWARD DROP, br_netfilter) never see the traffic. Only 198.18.0.0/15 is
// used, as the network rule asks.
type lan struct {
	t      *testing.T
	prefix string // names of our namespaces start with it
	hub    string
	hosts  int
}

const lanHubAddr = "198.18.0.1"

func newLAN(t *testing.T) *lan {
	t.Helper()
	harness.LookPath(t, "ip")
	var b [3]byte
	rand.Read(b[:])
	l := &lan{t: t, prefix: "mt" + hex.EncodeToString(b[:]), hosts: 0}
	l.hub = l.prefix + "hub"
	t.Cleanup(l.cleanup)
	l.ip("netns", "add", l.hub)
	l.ipns(l.hub, "link", "set", "lo", "up")
	l.ipns(l.hub, "link", "add", "br0", "type", "bridge")
	l.ipns(l.hub, "addr", "add", lanHubAddr+"/24", "dev", "br0")
	l.ipns(l.hub, "link", "set", "br0", "up")
	return l
}

// addHost creates a network namespace on the LAN and returns its name and
// address.
func (l *lan) addHost() (ns, addr string) {
	l.t.Helper()
	i := l.hosts
	l.hosts++
	ns = fmt.Sprintf("%sh%d", l.prefix, i)
	addr = fmt.Sprintf("198.18.0.%d", 10+i)
	veth := fmt.Sprintf("%sv%d", l.prefix, i) // ≤ 15 bytes
	l.ip("netns", "add", ns)
	l.ipns(ns, "link", "set", "lo", "up")
	l.ip("link", "add", veth, "netns", l.hub, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ipns(l.hub, "link", "set", veth, "master", "br0", "up")
	l.ipns(ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ipns(ns, "link", "set", "eth0", "up")
	return ns, addr
}

func (l *lan) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *lan) ipns(ns string, args ...string) {
	l.t.Helper()
	l.ip(append([]string{"-n", ns}, args...)...)
}

func (l *lan) cleanup() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, l.prefix) {
			exec.Command("ip", "netns", "delete", name).Run()
		}
	}
}

// relayIntoHub makes a TCP service of the root namespace (the coordinator
// on loopback) reachable from the LAN at lanHubAddr:port. It returns the
// LAN address.
func (l *lan) relayIntoHub(target string) string {
	l.t.Helper()
	return relay(l.t, "/run/netns/"+l.hub, lanHubAddr+":0", target)
}

// loopbackNS creates a network namespace with nothing but its loopback
// interface. Nodes started in it can announce no address but 127.0.0.1,
// so all their traffic (WireGuard included) stays on that loopback. The
// coordinator, on the test's own loopback, is reachable inside it through
// a relay at the returned URL.
func loopbackNS(t *testing.T, coordAddr string) (ns, coordURL string) {
	t.Helper()
	l := &lan{t: t}
	var b [3]byte
	rand.Read(b[:])
	ns = "ml" + hex.EncodeToString(b[:])
	l.prefix = ns
	t.Cleanup(l.cleanup)
	l.ip("netns", "add", ns)
	l.ipns(ns, "link", "set", "lo", "up")
	return ns, "http://" + relay(t, "/run/netns/"+ns, "127.0.0.1:0", coordAddr)
}

// relay listens on listenAddr inside the network namespace at nsPath and
// copies each connection to target, dialled from the test's namespace.
// It returns the address it listens on.
func relay(t *testing.T, nsPath, listenAddr, target string) string {
	t.Helper()
	ln, err := listenInNetns(nsPath, "tcp", listenAddr)
	if err != nil {
		t.Fatalf("listening in %s: %v", nsPath, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close() // the service is down: the client sees the connection end
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			go pipe(out, in)
			go func() {
				pipe(in, out)
				in.Close()
				out.Close()
				track(in, false)
				track(out, false)
			}()
		}
	}()
	return ln.Addr().String()
}

// httpClientInNetns is an HTTP client whose connections are made inside
// the network namespace ns (to reach a node's health endpoint there).
func httpClientInNetns(ns string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialInNetns("/run/netns/"+ns, network, addr)
			},
		},
	}
}

// listenInNetns opens a listener inside the network namespace at nsPath.
func listenInNetns(nsPath, network, addr string) (net.Listener, error) {
	return inNetns(nsPath, func() (net.Listener, error) { return net.Listen(network, addr) })
}

// closedPortInNetns returns a loopback TCP port that nothing listens on
// inside the network namespace at nsPath: the kernel chose it there while
// every listener of the namespace held its own.
func closedPortInNetns(t *testing.T, nsPath string) uint16 {
	t.Helper()
	ln, err := listenInNetns(nsPath, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("choosing a closed port in %s: %v", nsPath, err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// dialInNetns connects from inside the network namespace at nsPath.
func dialInNetns(nsPath, network, addr string) (net.Conn, error) {
	return inNetns(nsPath, func() (net.Conn, error) { return net.DialTimeout(network, addr, 5*time.Second) })
}

// inNetns runs open inside the network namespace at nsPath (see
// integration/internal/netns).
func inNetns[C io.Closer](nsPath string, open func() (C, error)) (C, error) {
	return netns.Do(nsPath, open)
}
