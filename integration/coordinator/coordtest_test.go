package coordinator_test

import (
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// TestCoordtestLifecycle checks the helper other suites rely on: start on
// port 0, keys, nodes, events, kill -9 and restart on the same file and port.
func TestCoordtestLifecycle(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: 30 * time.Second})
	key := c.CreateKey(t, "--reusable")
	n := register(t, c.URL, key, "alpha")
	nodes := c.Nodes(t)
	if len(nodes) != 1 || nodes[0].Name != "alpha" || nodes[0].ID != n.resp.Node.ID {
		t.Fatalf("nodes = %+v", nodes)
	}
	ev := c.WaitEvent(t, 5*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventRegistered })
	if ev.Name != "alpha" {
		t.Fatalf("registered event = %+v", ev)
	}
	url := c.URL
	c.Kill(t)
	c.Restart(t)
	if c.URL != url {
		t.Fatalf("restart moved the server from %s to %s", url, c.URL)
	}
	if nodes := c.Nodes(t); len(nodes) != 1 || nodes[0].Name != "alpha" {
		t.Fatalf("after kill -9 and restart: nodes = %+v", nodes)
	}
	// The node's secret survived the crash (only its hash is stored).
	n.connect()
	n.drop()
}
