package mesh

import (
	"fmt"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// The coordinator restarts under running nodes: their map streams
// reconnect (with backoff) and resume, and a node that joins after the
// restart reaches the old ones' maps without any of them restarting.
func TestNodesSurviveCoordinatorRestart(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	a := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "old-a"})
	a.waitUp()
	b := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "old-b"})
	b.waitUp()

	c.Restart(t)
	for _, m := range []*meshinit{a, b} {
		harness.Eventually(t, waitLimit, "stream reconnected after the restart", func() (bool, string) {
			st, err := m.status()
			if err != nil {
				return false, err.Error()
			}
			return st.Coordinator.State == "connected" && st.Coordinator.Reconnects >= 1, fmt.Sprintf("%+v", st.Coordinator)
		})
	}
	n := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "new-c"})
	n.waitUp()
	for _, m := range []*meshinit{a, b} {
		harness.Eventually(t, waitLimit, "old node sees the new one", func() (bool, string) {
			st, err := m.status()
			if err != nil {
				return false, err.Error()
			}
			return hasPeer(st, "new-c") && hasPeer(st, map[*meshinit]string{a: "old-b", b: "old-a"}[m]), fmt.Sprintf("%+v", st.Peers)
		})
	}
}

func hasPeer(st ctlsock.Status, name string) bool {
	for _, p := range st.Peers {
		if p.Name == name {
			return true
		}
	}
	return false
}
