package mesh

import (
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// A container that stops cleanly frees its name at once, so its successor
// gets the plain name; one that was killed leaves an offline holder, and a
// successor with the same key reclaims the plain name from it (the stale
// node is deleted with reason replaced).
func TestSameHostnameGetsThePlainName(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: time.Minute, ReconnectGrace: 200 * time.Millisecond})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")

	first := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "web"})
	if st := first.waitUp(); st.Name != "web" {
		t.Fatalf("first node named %q, want web", st.Name)
	}
	since := lastSeq(t, c)
	first.signal(syscall.SIGTERM)
	first.wait(waitLimit)
	deletion(t, c, "web", since, waitLimit)

	second := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "web"})
	st2 := second.waitUp()
	if st2.Name != "web" {
		t.Fatalf("after a logout the next node is named %q, want the plain web", st2.Name)
	}
	since = lastSeq(t, c)
	second.signal(syscall.SIGKILL)
	second.wait(waitLimit)
	c.WaitEvent(t, waitLimit, func(e meshapi.Event) bool {
		return e.Seq > since && e.Type == meshapi.EventOffline && e.NodeID == meshapi.NodeID(st2.ID)
	})

	third := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "web"})
	if st3 := third.waitUp(); st3.Name != "web" {
		t.Fatalf("after a SIGKILL the same key's next node is named %q, want the reclaimed web", st3.Name)
	}
	ev := c.WaitEvent(t, waitLimit, func(e meshapi.Event) bool {
		return e.Seq > since && e.Type == meshapi.EventDeleted && e.NodeID == meshapi.NodeID(st2.ID)
	})
	if ev.Reason != meshapi.ReasonReplaced {
		t.Fatalf("the killed holder was deleted with reason %q, want replaced", ev.Reason)
	}
}

// Without MESH_HOSTNAME the node asks for the container's hostname.
func TestHostnameDefaultsToTheContainers(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, uts: "box-7"})
	if st := m.waitUp(); st.Name != "box-7" || st.FQDN != "box-7.mesh.internal" {
		t.Fatalf("node named %q (%s), want the container hostname box-7", st.Name, st.FQDN)
	}
}
