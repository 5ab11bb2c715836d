// Package meshfixture is what a runtime suite's mesh test needs from the
// coordinator: a real meshcoord for this test (coordtest) listening on an
// address the containers can reach, an ephemeral reusable key, and waits on
// the node list and the event log.
package meshfixture

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// ReconnectGrace is the coordinator's grace before a dropped node counts as
// offline. Short, so a killed container's GC clock starts quickly.
const ReconnectGrace = time.Second

// Mesh is one test's coordinator and auth key.
type Mesh struct {
	Coord *coordtest.Coordinator
	// Key is an ephemeral, reusable auth key.
	Key string
}

// New starts a coordinator listening on host (an address the containers
// reach: the host's side of their bridge, in 198.18.0.0/15) and creates an
// ephemeral, reusable key whose nodes are collected after ephemeralTimeout
// offline.
func New(t testing.TB, host string, ephemeralTimeout time.Duration) *Mesh {
	t.Helper()
	c := coordtest.Start(t, coordtest.Options{
		Listen:         net.JoinHostPort(host, "0"),
		ReconnectGrace: ReconnectGrace,
	})
	key := c.CreateKey(t, "--ephemeral", "--reusable", "--ephemeral-timeout", ephemeralTimeout.String(),
		"--description", t.Name())
	return &Mesh{Coord: c, Key: key}
}

// Env is the environment a container needs to join: MESH_AUTHKEY and
// MESH_COORDINATOR.
func (m *Mesh) Env() []string {
	return []string{"MESH_AUTHKEY=" + m.Key, "MESH_COORDINATOR=" + m.Coord.URL}
}

// OnlineNode waits until a node that asked for hostname is online and is
// none of the nodes in not, and returns it.
func (m *Mesh) OnlineNode(t testing.TB, hostname string, timeout time.Duration, not ...meshapi.NodeID) meshapi.Node {
	t.Helper()
	var found meshapi.Node
	harness.Eventually(t, timeout, fmt.Sprintf("node %q online", hostname), func() (bool, string) {
		nodes := m.Coord.Nodes(t)
		for _, n := range nodes {
			if n.Hostname == hostname && n.Online && !slices.Contains(not, n.ID) {
				found = n
				return true, ""
			}
		}
		return false, "nodes: " + describe(nodes)
	})
	return found
}

// WaitNodes waits until exactly the nodes named names (any order) are
// listed: nil means none at all, nothing left behind.
func (m *Mesh) WaitNodes(t testing.TB, timeout time.Duration, names []string) {
	t.Helper()
	want := slices.Sorted(slices.Values(names))
	harness.Eventually(t, timeout, fmt.Sprintf("exactly nodes %v listed", want), func() (bool, string) {
		nodes := m.Coord.Nodes(t)
		var got []string
		for _, n := range nodes {
			got = append(got, n.Name)
		}
		slices.Sort(got)
		return slices.Equal(got, want), "nodes: " + describe(nodes)
	})
}

// WaitEvent waits for the first event (from the start of the log) that
// match accepts; what names it in the failure message.
func (m *Mesh) WaitEvent(t testing.TB, timeout time.Duration, what string, match func(meshapi.Event) bool) meshapi.Event {
	t.Helper()
	t.Logf("waiting up to %v for a %s event", timeout, what)
	return m.Coord.WaitEvent(t, timeout, match)
}

// WaitDeleted waits for the deleted event of node id, fails t (without
// stopping it) unless the event gives reason want, and returns the event.
func (m *Mesh) WaitDeleted(t testing.TB, timeout time.Duration, id meshapi.NodeID, want meshapi.DeleteReason) meshapi.Event {
	t.Helper()
	ev := m.WaitEvent(t, timeout, "deleted", func(e meshapi.Event) bool {
		return e.NodeID == id && e.Type == meshapi.EventDeleted
	})
	if ev.Reason != want {
		t.Errorf("node %d (%s) deleted with reason %q, want %q", id, ev.Name, ev.Reason, want)
	}
	return ev
}

// Events is the whole event log so far.
func (m *Mesh) Events(t testing.TB) []meshapi.Event {
	t.Helper()
	return m.Coord.Events(t)
}

// TestRange is the only range containers may have addresses in (besides
// loopback): the network rule of the suites.
var TestRange = netip.MustParsePrefix("198.18.0.0/15")

// CheckEndpoints fails t if node announces a UDP endpoint outside the
// test range and loopback: peers would send WireGuard traffic there.
func CheckEndpoints(t testing.TB, node meshapi.Node) {
	t.Helper()
	for _, ep := range node.Endpoints {
		if a := ep.Addr().Unmap(); !TestRange.Contains(a) && !a.IsLoopback() {
			t.Errorf("node %s announces endpoint %v, outside %v and loopback", node.Name, ep, TestRange)
		}
	}
}

func describe(nodes []meshapi.Node) string {
	if len(nodes) == 0 {
		return "none"
	}
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%d %s (hostname %s, online %v)", n.ID, n.Name, n.Hostname, n.Online))
	}
	return strings.Join(parts, "; ")
}
