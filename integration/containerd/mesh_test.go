package containerd_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/meshfixture"
	"github.com/meshinit/meshinit/meshapi"
)

// The mesh under containerd. Each test runs its own coordinator on the host,
// listening on the suite bridge's gateway (198.18.16.1); each box gets a
// network namespace on that bridge and no default route.

// newMesh starts a coordinator for this test and makes an ephemeral,
// reusable key with the given inactivity timeout.
func newMesh(t *testing.T, ephemeralTimeout time.Duration) *meshfixture.Mesh {
	t.Helper()
	return meshfixture.New(t, daemon.Gateway.Addr().String(), ephemeralTimeout)
}

func TestMeshSIGTERMLogsOutAndKeepsTheAppsStatus(t *testing.T) {
	ctx := suite(t)
	m := newMesh(t, 10*time.Minute) // a GC could never explain a quick deletion
	b := startBox(ctx, t, "mesh-term", spec{
		args: []string{"sleep", "-term", "exit:42"}, env: m.Env(), hostname: "mesh-term", network: true,
	})
	node := m.OnlineNode(t, "mesh-term", 60*time.Second)
	meshfixture.CheckEndpoints(t, node)
	t.Logf("node announces endpoints %v", node.Endpoints)
	out := b.waitOutput("testapp ready", 30*time.Second)
	if !strings.Contains(out, "mesh_name="+node.FQDN+" ") || !strings.Contains(out, "authkey_visible=false") {
		t.Errorf("the app's environment does not match node %s:\n%s", node.FQDN, out)
	}
	if nspid, exe, err := b.hostPID1Facts(); err != nil || nspid != 1 || !strings.HasSuffix(exe, "/meshinit") {
		t.Errorf("task init: pid %d in its namespace, exe %q, err %v; want PID 1 running /meshinit", nspid, exe, err)
	}
	b.kill(ctx, syscall.SIGTERM)
	code, exited := b.wait(30 * time.Second)
	if code != 42 {
		t.Errorf("exit status %d, want the app's 42; output:\n%s", code, b.out)
	}
	deleted := m.WaitDeleted(t, 10*time.Second, node.ID, meshapi.ReasonLogout)
	if deleted.Time.After(exited) {
		t.Errorf("node deleted at %v, after the task exited at %v", deleted.Time, exited)
	}
}

func TestMeshSIGKILLIsCollectedAfterTheTimeout(t *testing.T) {
	ctx := suite(t)
	const timeout = 3 * time.Second
	m := newMesh(t, timeout)
	b := startBox(ctx, t, "mesh-kill", spec{args: []string{"sleep"}, env: m.Env(), hostname: "mesh-kill", network: true})
	node := m.OnlineNode(t, "mesh-kill", 60*time.Second)
	killed := time.Now()
	b.kill(ctx, syscall.SIGKILL)
	if code, _ := b.wait(30 * time.Second); code != 137 {
		t.Errorf("exit status %d, want 137", code)
	}
	deleted := m.WaitDeleted(t, timeout+60*time.Second, node.ID, meshapi.ReasonGC)
	if gap := deleted.Time.Sub(killed); gap < timeout {
		t.Errorf("node collected %v after the kill, before its %v inactivity timeout", gap, timeout)
	}
	m.WaitNodes(t, 5*time.Second, nil)
}

// churnCount is how many containers TestMeshChurn runs in a row
// (MESHINIT_CHURN overrides; the issue asks for at least 50).
func churnCount(t *testing.T) int {
	if s := os.Getenv("MESHINIT_CHURN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MESHINIT_CHURN=%q: want a positive count", s)
		}
		return n
	}
	return 50
}

// TestMeshChurn runs short-lived containers one after another, the CI-job
// pattern: each joins, runs its app, logs out when the app exits and is
// removed. No node may be left behind.
func TestMeshChurn(t *testing.T) {
	ctx := suite(t)
	n := churnCount(t)
	m := newMesh(t, 10*time.Minute) // any leftover would still be listed at the end
	start := time.Now()
	for i := range n {
		id := fmt.Sprintf("churn%d", i)
		b := startBox(ctx, t, id, spec{args: []string{"info"}, env: m.Env(), hostname: id, network: true})
		code, _ := b.wait(60 * time.Second)
		out := b.out.String()
		if code != 0 || !strings.Contains(out, "mesh_name="+id+".") {
			t.Fatalf("container %d: exit %d (want 0, joined as %s); output:\n%s", i, code, id, out)
		}
		b.remove()
	}
	elapsed := time.Since(start)
	rate := float64(n) / elapsed.Seconds()
	t.Logf("containerd churn: %d containers (join, run, logout, remove) in %v: %.2f containers/s", n, elapsed.Round(time.Millisecond), rate)
	fmt.Printf("containerd churn: %d containers in %v = %.2f containers/s\n", n, elapsed.Round(time.Millisecond), rate)

	m.WaitNodes(t, 10*time.Second, nil)
	logouts := 0
	for _, e := range m.Events(t) {
		if e.Type == meshapi.EventDeleted {
			if e.Reason != meshapi.ReasonLogout {
				t.Errorf("node %d %s deleted with reason %q, want logout", e.NodeID, e.Name, e.Reason)
			}
			logouts++
		}
	}
	if logouts != n {
		t.Errorf("%d nodes deleted by logout, want %d (one per container)", logouts, n)
	}
}
