package docker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/meshfixture"
	"github.com/meshinit/meshinit/meshapi"
)

// The mesh lifecycle under docker: the coordinator runs on the host,
// listening on the private bridge's gateway (198.18.0.1); containers reach
// it over the default bridge (198.18.0.0/24) and each other over the mesh.

func TestMeshJoinsBeforeTheAppStarts(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, time.Minute)
	name := container(t, "mesh-join")
	docker(t, append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...),
		imageTestapp, "sleep")...)
	out := waitLog(t, name, "testapp ready", 60*time.Second)
	app := parseStart(t, out)
	node := m.OnlineNode(t, name, 30*time.Second)

	if app.meshName != node.FQDN || app.meshIPv4 != node.IPv4.String() {
		t.Errorf("the app got MESH_NAME=%q MESH_IPV4=%q, the coordinator has %q %v", app.meshName, app.meshIPv4, node.FQDN, node.IPv4)
	}
	if app.authkeyVisible {
		t.Error("the app can see MESH_AUTHKEY")
	}
	online := m.WaitEvent(t, 10*time.Second, "online", func(e meshapi.Event) bool {
		return e.NodeID == node.ID && e.Type == meshapi.EventOnline
	})
	if app.t.Before(online.Time) {
		t.Errorf("the app started at %v, before its node was online at %v", app.t, online.Time)
	}
	if strings.Contains(logs(t, name), m.Key) {
		t.Error("the auth key appears in the container's log")
	}
}

func TestMeshTwoContainersTalkByName(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, time.Minute)
	server := container(t, "mesh-web")
	// the example image: the pattern users copy
	docker(t, append(append([]string{"run", "-d", "--name", server, "--hostname", server, "-e", "MESH_FORWARD=8080"},
		dockerEnv(m)...), imageExample)...)
	web := m.OnlineNode(t, server, 60*time.Second)

	for i, target := range []string{web.Name, web.FQDN} {
		client := container(t, fmt.Sprintf("mesh-client-%d", i))
		code, out := dockerCode(t, append(append([]string{"run", "--rm", "--name", client, "--hostname", client}, dockerEnv(m)...),
			imageTestapp, "fetch", "-timeout", "30s", "http://"+target+":8080/")...)
		if code != 0 || !strings.Contains(out, "hello from "+web.FQDN) {
			t.Errorf("fetch http://%s:8080/ from another container: exit %d, output:\n%s", target, code, out)
		}
	}
	// the tunnel carried traffic, so the server's endpoints are known by
	// now: every one must be in the test range
	if n, ok := m.Coord.Node(t, web.Name); ok {
		meshfixture.CheckEndpoints(t, n)
		t.Logf("%s announces endpoints %v", n.Name, n.Endpoints)
	}
	// each client run logged out on exit: only the server is left
	m.WaitNodes(t, 30*time.Second, []string{web.Name})
}

func TestMeshDockerStopLogsOutAtOnce(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, 10*time.Minute) // a GC could never explain a quick deletion
	name := container(t, "mesh-stop")
	docker(t, append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...),
		imageTestapp, "sleep", "-term", "exit:42")...)
	node := m.OnlineNode(t, name, 60*time.Second)
	docker(t, "stop", name)
	deleted := m.WaitDeleted(t, 10*time.Second, node.ID, meshapi.ReasonLogout)
	if got := docker(t, "wait", name); got != "42" {
		t.Errorf("docker wait: %q, want the app's own 42", got)
	}
	finished := containerFinished(t, name)
	if deleted.Time.After(finished) {
		t.Errorf("node deleted at %v, after the container exited at %v", deleted.Time, finished)
	}
	m.WaitNodes(t, 5*time.Second, nil)
}

func TestMeshDockerKillIsCollectedAfterTheTimeout(t *testing.T) {
	suite(t)
	t.Parallel()
	const timeout = 3 * time.Second
	m := newMesh(t, timeout)
	name := container(t, "mesh-kill")
	docker(t, append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...),
		imageTestapp, "sleep")...)
	node := m.OnlineNode(t, name, 60*time.Second)
	killed := time.Now()
	docker(t, "kill", "--signal", "KILL", name)
	if got := docker(t, "wait", name); got != "137" {
		t.Errorf("docker wait after SIGKILL: %q, want 137", got)
	}
	deleted := m.WaitDeleted(t, timeout+60*time.Second, node.ID, meshapi.ReasonGC)
	if gap := deleted.Time.Sub(killed); gap < timeout {
		t.Errorf("node collected %v after the kill, before its %v inactivity timeout", gap, timeout)
	}
	m.WaitNodes(t, 5*time.Second, nil)
}

func TestMeshDockerRestartKeepsThePlainName(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, 10*time.Minute)
	name := container(t, "mesh-restart")
	docker(t, append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...),
		imageTestapp, "sleep")...)
	first := m.OnlineNode(t, name, 60*time.Second)
	docker(t, "restart", name)
	second := m.OnlineNode(t, name, 60*time.Second, first.ID)
	if second.ID == first.ID {
		t.Fatalf("still node %d after docker restart", first.ID)
	}
	if second.Name != name {
		t.Errorf("after docker restart the node is %q, want the plain %q", second.Name, name)
	}
	m.WaitDeleted(t, 5*time.Second, first.ID, meshapi.ReasonLogout) // the first node, on the restart's stop
	m.WaitNodes(t, 5*time.Second, []string{name})
}

func TestMeshRerunWithTheSameNameKeepsThePlainName(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, 10*time.Minute) // the killed node would linger for 10 minutes
	name := container(t, "mesh-rerun")
	run := append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...), imageTestapp, "sleep")
	docker(t, run...)
	first := m.OnlineNode(t, name, 60*time.Second)
	// rm -f kills: no logout, the node stays registered (offline)
	docker(t, "rm", "-f", name)
	m.WaitEvent(t, 30*time.Second, "offline", func(e meshapi.Event) bool {
		return e.NodeID == first.ID && e.Type == meshapi.EventOffline
	})
	docker(t, run...)
	second := m.OnlineNode(t, name, 60*time.Second, first.ID)
	if second.ID == first.ID || second.Name != name {
		t.Errorf("re-run got node %d %q; want a new node with the plain name %q (old node %d)", second.ID, second.Name, name, first.ID)
	}
	m.WaitDeleted(t, 5*time.Second, first.ID, meshapi.ReasonReplaced) // the stale node, by the re-run
	m.WaitNodes(t, 5*time.Second, []string{name})
}

func TestMeshStopTimeoutWithAnAppIgnoringSIGTERM(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, 10*time.Minute)
	name := container(t, "mesh-stubborn")
	// docker's budget and meshinit's budget agree: see docs/kubernetes.md
	docker(t, append(append([]string{"run", "-d", "--name", name, "--hostname", name,
		"--stop-timeout", "3", "-e", "MESH_STOP_TIMEOUT=3s"}, dockerEnv(m)...),
		imageTestapp, "sleep", "-term", "ignore")...)
	node := m.OnlineNode(t, name, 60*time.Second)
	docker(t, "stop", name)
	waitLog(t, name, "testapp got SIGTERM", 5*time.Second)
	deleted := m.WaitDeleted(t, 10*time.Second, node.ID, meshapi.ReasonLogout)
	finished := containerFinished(t, name)
	if deleted.Time.After(finished) {
		t.Errorf("node deleted at %v, after the container was killed at %v", deleted.Time, finished)
	}
	// meshinit does not kill the app (MESH_STOP_KILL is off): docker's own
	// SIGKILL at the end of --stop-timeout does, after the logout.
	code := docker(t, "wait", name)
	if code != "137" {
		t.Errorf("exit %s: want 137 (killed by docker at the end of its budget)", code)
	}
}

func TestMeshInteractiveJobControl(t *testing.T) {
	suite(t)
	t.Parallel()
	m := newMesh(t, time.Minute)
	name := container(t, "mesh-tty")
	jobControl(t, append([]string{"--name", name, "--hostname", name}, dockerEnv(m)...)...)
	m.WaitNodes(t, 10*time.Second, nil)
}

// newMesh starts a coordinator for this test on the private bridge's
// gateway and makes an ephemeral, reusable key with the given inactivity
// timeout.
func newMesh(t *testing.T, ephemeralTimeout time.Duration) *meshfixture.Mesh {
	t.Helper()
	return meshfixture.New(t, dockerd.Bridge, ephemeralTimeout)
}

// dockerEnv is the mesh environment as docker run flags.
func dockerEnv(m *meshfixture.Mesh) []string {
	var args []string
	for _, kv := range m.Env() {
		args = append(args, "-e", kv)
	}
	return args
}

// containerFinished is when docker saw the container's process exit.
func containerFinished(t *testing.T, name string) time.Time {
	t.Helper()
	s := inspect(t, name, "{{.State.FinishedAt}}")
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("FinishedAt %q: %v", s, err)
	}
	return at
}
