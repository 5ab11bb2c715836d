package mesh

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// refusedWithin is how fast a refused connection must fail: a reset or an
// ICMP answer takes a round trip; a silent drop would hang for minutes.
const refusedWithin = 5 * time.Second

// An attacker node reaches a victim node over the mesh and aims at
// meshinit's own listeners on it: the SOCKS5/HTTP proxy (which would make
// the victim an open proxy into its loopback and its network) and the
// health port. MESH_FORWARD is "all" (the default), so everything else on
// the victim's loopback is meant to be reachable, and is: the app's server
// answers. meshinit's own ports must refuse, promptly.
func TestPeerCannotReachMeshinitListeners(t *testing.T) {
	harness.Integration(t)
	stV, nsA := victimAndAttacker(t, "victim", "attacker", "127.0.0.1", "secret",
		[]string{"MESH_PROXY=127.0.0.1:1055", "MESH_HEALTH_ADDR=127.0.0.1:9090"}, []string{"MESH_PROXY=127.0.0.1:1055"})

	// The app's own server is reachable: forwarding works, so what follows
	// fails for the right reason.
	if out, err := get(t, nsA, "http", "http://victim:8080/", 10*time.Second); err != nil || !strings.Contains(out, "secret from victim") {
		t.Fatalf("the victim's app is not reachable over the mesh: %q, %v", out, err)
	}

	// Through the victim's proxy to its loopback-only server.
	begin := time.Now()
	status, err := nestedConnect(nsA, stV.IPv4.String()+":1055", "127.0.0.1:8080")
	if err == nil {
		t.Errorf("CONNECT through the victim's proxy, from the mesh, to its 127.0.0.1:8080 answered %q: the node is an open proxy", status)
	} else if d := time.Since(begin); d > refusedWithin {
		t.Errorf("the victim's proxy port was refused only after %v: %v", d, err)
	} else {
		t.Logf("victim's proxy port refused after %v: %v", time.Since(begin).Round(time.Millisecond), err)
	}

	// The health port.
	begin = time.Now()
	if status, err := viaProxyGet(nsA, "http://"+stV.IPv4.String()+":9090/healthz"); err == nil {
		t.Errorf("the victim's health port answered a peer over the mesh: %q", status)
	} else if d := time.Since(begin); d > refusedWithin {
		t.Errorf("the victim's health port was refused only after %v: %v", d, err)
	}
}

// In TUN mode the kernel delivers mesh connections to any listener on a
// wildcard address, meshinit's health port included: the node's filter
// must refuse them, while the app's own wildcard listener stays reachable.
func TestPeerCannotReachMeshinitListenersTUN(t *testing.T) {
	harness.Integration(t)
	stV, nsA := victimAndAttacker(t, "tunvictim", "tunattacker", "0.0.0.0", "app",
		[]string{"MESH_NET=tun", "MESH_HEALTH_ADDR=0.0.0.0:9090"}, []string{"MESH_NET=tun"})

	if out, err := get(t, nsA, "none", "http://"+stV.IPv4.String()+":8080/", 10*time.Second); err != nil || !strings.Contains(out, "app from tunvictim") {
		t.Fatalf("the victim's app is not reachable over the mesh: %q, %v", out, err)
	}
	begin := time.Now()
	resp, err := httpClientInNetns(nsA).Get("http://" + stV.IPv4.String() + ":9090/healthz")
	if err == nil {
		resp.Body.Close()
		t.Errorf("the victim's health port answered a peer over the mesh: %s", resp.Status)
	} else if d := time.Since(begin); d > refusedWithin {
		t.Errorf("the victim's health port was refused only after %v: %v", d, err)
	} else {
		t.Logf("health port refused after %v: %v", time.Since(begin).Round(time.Millisecond), err)
	}
}

// victimAndAttacker starts a coordinator and two nodes on a LAN of
// namespaces: the victim, whose app serves message on appHost:8080, and the
// attacker, each with its env. It returns the victim's status once its app
// serves, and the attacker's namespace once it is up.
func victimAndAttacker(t *testing.T, victimName, attackerName, appHost, message string, victimEnv, attackerEnv []string) (ctlsock.Status, string) {
	t.Helper()
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordURL := "http://" + l.relayIntoHub(c.Addr)
	nsV, _ := l.addHost()
	victim := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: victimName, netns: nsV, env: victimEnv,
		command: []string{demo(t), "serve", "-listen", appHost + ":8080", "-message", message}})
	stV := victim.waitUp()
	victim.waitOutput("serving on")
	nsA, _ := l.addHost()
	startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: attackerName, netns: nsA, env: attackerEnv}).waitUp()
	return stV, nsA
}

// nestedConnect opens, from inside netns ns, a tunnel through the local
// node's HTTP proxy (127.0.0.1:1055) to hop, and asks the proxy it reaches
// there for a CONNECT to target. It returns the second proxy's status line;
// an error means the second proxy was never reached or refused.
func nestedConnect(ns, hop, target string) (string, error) {
	c, err := dialInNetns("/run/netns/"+ns, "tcp", "127.0.0.1:1055")
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	status, err := connect(c, br, hop)
	if err != nil {
		return status, fmt.Errorf("tunnel to %s: %w", hop, err)
	}
	return connect(c, br, target)
}

// connect sends a CONNECT on c and reads the answer's head.
func connect(c net.Conn, br *bufio.Reader, target string) (string, error) {
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Status, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	return resp.Status, nil
}

// viaProxyGet GETs url from inside ns through the local node's proxy.
func viaProxyGet(ns, url string) (string, error) {
	c, err := dialInNetns("/run/netns/"+ns, "tcp", "127.0.0.1:1055")
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", url)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Status + " " + string(body), nil
}
