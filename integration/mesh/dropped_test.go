package mesh

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
)

// TestConnectTimeoutIsRetried: the coordinator is unroutable the way a
// firewall makes it, by dropping the SYN (an nftables rule in the node's
// network namespace), so registration's TCP connect times out. meshinit
// keeps retrying within MESH_WAIT_TIMEOUT, as it does for a refused
// connection, and joins as soon as the rule is lifted.
func TestConnectTimeoutIsRetried(t *testing.T) {
	harness.Integration(t)
	harness.LookPath(t, "nft")
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordAddr := l.relayIntoHub(c.Addr) // 198.18.0.1:port, in the hub
	host, port, err := net.SplitHostPort(coordAddr)
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := l.addHost()
	nft := func(rules string) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s\n%s", err, rules, out)
		}
	}
	// Only SYNs to the coordinator's 198.18.0.1 port are dropped.
	nft("table inet meshdrop {\n chain out {\n  type filter hook output priority 0;\n" +
		"  ip daddr " + host + " tcp dport " + port + " tcp flags syn drop\n }\n}\n")

	m := startMeshinit(t, nodeSpec{coord: "http://" + coordAddr, key: key, hostname: "dropped", netns: ns,
		env: []string{"MESH_WAIT_TIMEOUT=60s"}})
	// The first attempt's connect times out (5 s) and is retried.
	harness.Eventually(t, 30*time.Second, "a timed-out connect is logged and retried", func() (bool, string) {
		select {
		case <-m.exited:
			t.Fatalf("meshinit exited (%v) while the SYN was dropped\nstderr:\n%s", m.state, m.stderr)
		default:
		}
		for _, line := range strings.Split(m.stderr.String(), "\n") {
			if strings.Contains(line, "register failed, retrying") && strings.Contains(line, "timeout") {
				return true, ""
			}
		}
		return false, "stderr:\n" + m.stderr.String()
	})
	lifted := time.Now()
	nft("delete table inet meshdrop\n")
	st := m.waitUp()
	t.Logf("up %v after the drop was lifted (%d registration attempts logged)", time.Since(lifted),
		strings.Count(m.stderr.String(), "register failed, retrying"))
	if st.Name != "dropped" {
		t.Fatalf("joined as %q", st.Name)
	}
	m.waitOutput("hanging")
}
