package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
)

// meshOnLAN starts a coordinator and a private LAN, and returns the LAN,
// the coordinator's URL on it and an ephemeral, reusable key.
func meshOnLAN(t *testing.T) (l *lan, coordURL, key string) {
	t.Helper()
	c := coordtest.Start(t, coordtest.Options{})
	key = c.CreateKey(t, "--ephemeral", "--reusable")
	l = newLAN(t)
	return l, "http://" + l.relayIntoHub(c.Addr), key
}

// startDB starts the node "db" on its own host of the LAN: a userspace
// node whose command is a real PostgreSQL server on 127.0.0.1:5432, which
// the node forwards from its mesh address.
func startDB(t *testing.T, l *lan, coordURL, key string) *meshinit {
	t.Helper()
	ns, _ := l.addHost()
	return startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "db", netns: ns,
		env:     []string{"MESH_FORWARD=5432"},
		command: pgCluster(t, "127.0.0.1")})
}

// Userspace mode: psql, which ignores proxy variables, queries a real
// PostgreSQL server on another host through MESH_CONNECT's local port.
// MESH_WAIT_FOR holds psql until the server answers over the mesh. A rule
// for a name that is not in the map closes the connection at once and
// logs a line.
func TestPsqlThroughMeshConnect(t *testing.T) {
	harness.Integration(t)
	l, coordURL, key := meshOnLAN(t)
	startDB(t, l, coordURL, key)

	ns, _ := l.addHost()
	client := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "app", netns: ns,
		env: []string{"MESH_CONNECT=5432:db:5432,6543:ghost:5432", "MESH_WAIT_FOR=db:5432", "MESH_WAIT_TIMEOUT=60s"},
		command: []string{"sh", "-c", shellJoin(psql(t, "127.0.0.1")) + ` && ` +
			// the same client against the rule whose peer is not in the map
			`if PGCONNECT_TIMEOUT=30 psql -X -w -h 127.0.0.1 -p 6543 -U postgres -Atc 'select 1'; then echo ghost-answered; else echo ghost-refused; fi`}})
	if code := client.wait(2 * time.Minute); code != 0 {
		t.Fatalf("psql through MESH_CONNECT: exit %d\nstdout:\n%s\nstderr:\n%s", code, client.stdout, client.stderr)
	}
	out := client.stdout.String()
	if !strings.Contains(out, pgAnswer) {
		t.Fatalf("psql did not get the answer %q:\n%s\nstderr:\n%s", pgAnswer, out, client.stderr)
	}
	if !strings.Contains(out, "ghost-refused") {
		t.Fatalf("a rule for a peer not in the map did not fail:\n%s", out)
	}
	if logs := client.stderr.String(); !strings.Contains(logs, "cannot reach the peer") || !strings.Contains(logs, "remote=ghost:5432") {
		t.Fatalf("no log line for the peer not in the map:\n%s", logs)
	}
}

// MESH_WAIT_FOR holds the app until a peer that starts 2 s later answers:
// psql (which does not retry) runs only once the database accepts
// connections over the mesh.
func TestWaitForHoldsTheAppUntilThePeerAnswers(t *testing.T) {
	harness.Integration(t)
	l, coordURL, key := meshOnLAN(t)

	ns, _ := l.addHost()
	client := startMeshinit(t, nodeSpec{coord: coordURL, key: key, hostname: "app", netns: ns,
		env:     []string{"MESH_CONNECT=5432:db:5432", "MESH_WAIT_FOR=db:5432", "MESH_WAIT_TIMEOUT=60s"},
		command: []string{"sh", "-c", "echo app-started; exec " + shellJoin(psql(t, "127.0.0.1"))}})
	client.waitUp()
	harness.Eventually(t, waitLimit, "meshinit waits for db:5432", func() (bool, string) {
		return strings.Contains(client.stderr.String(), "waiting for peers"), client.stderr.String()
	})
	// The scenario: the database starts 2 s after the app's node is up.
	time.Sleep(2 * time.Second)
	if out := client.stdout.String(); out != "" {
		t.Fatalf("the app started before its peer existed: %q", out)
	}
	startDB(t, l, coordURL, key)
	if code := client.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, client.stdout, client.stderr)
	}
	if out := client.stdout.String(); !strings.Contains(out, "app-started\n"+pgAnswer) {
		t.Fatalf("psql output %q, want %q after the start", out, pgAnswer)
	}
}

// A peer that never answers: exit 125 naming it, the app never runs.
func TestWaitForTimeoutExits125NamingThePeer(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	ns, url := loopbackNS(t, c.Addr)
	m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "app",
		env:     []string{"MESH_WAIT_FOR=db:5432", "MESH_WAIT_TIMEOUT=3s"},
		command: []string{"echo", "app-started"}})
	if code := m.wait(waitLimit); code != 125 {
		t.Fatalf("exit %d, want 125\nstderr:\n%s", code, m.stderr)
	}
	if out := m.stdout.String(); out != "" {
		t.Fatalf("the app ran: %q", out)
	}
	if logs := m.stderr.String(); !strings.Contains(logs, "MESH_WAIT_FOR: db:5432 did not answer") {
		t.Fatalf("the message does not name db:5432:\n%s", logs)
	}
}

// Bad input: a malformed MESH_CONNECT or MESH_WAIT_FOR, or a local port
// that is taken, gives exit 125 with a message that quotes the entry or
// names the port; the node never registers.
func TestBadConnectAndWaitForExit125(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	ns, url := loopbackNS(t, c.Addr)
	taken, err := listenInNetns("/run/netns/"+ns, "tcp", "127.0.0.1:5432")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ env, want string }{
		{"MESH_CONNECT=5432:db", `MESH_CONNECT (--connect): entry "5432:db": want LOCAL_PORT:NAME:PORT`},
		{"MESH_CONNECT=6379:cache:6379,x:db:1", `entry "x:db:1": local port`},
		{"MESH_WAIT_FOR=db:5432,cache", `MESH_WAIT_FOR (--wait-for): entry "cache": want NAME:PORT`},
		{"MESH_CONNECT=6379:cache:6379,5432:db:5432", `cannot listen on 127.0.0.1:5432 (local port 5432)`},
	} {
		m := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: key, hostname: "bad",
			env: []string{tc.env}, command: []string{"echo", "app-started"}})
		if code := m.wait(waitLimit); code != 125 {
			t.Fatalf("%s: exit %d, want 125\nstderr:\n%s", tc.env, code, m.stderr)
		}
		// slog's text format escapes the quotes inside err="…"
		logs := strings.ReplaceAll(m.stderr.String(), `\"`, `"`)
		if m.stdout.String() != "" || !strings.Contains(logs, tc.want) {
			t.Fatalf("%s: stdout %q; stderr does not say %q:\n%s", tc.env, m.stdout, tc.want, m.stderr)
		}
	}
	if nodes := c.Nodes(t); len(nodes) != 0 {
		t.Fatalf("nodes registered despite bad settings: %+v", nodes)
	}
}
