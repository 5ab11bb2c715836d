package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/localfwd"
	"github.com/meshinit/meshinit/node/nametable"
)

// newNode is startNode's configuration with changes, not started yet.
func newNode(t *testing.T, c *coordinatortest.Server, key, host string, change func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		Coordinator: c.URL, AuthKey: key, Hostname: host,
		Forward: Forward{All: true}, Log: slog.New(slog.DiscardHandler),
	}
	change(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loopbackOnly(n)
	t.Cleanup(func() { n.Close() })
	return n
}

func newMesh(t *testing.T) (*coordinatortest.Server, string) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	return co, co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
}

// DialMesh reaches map names only: anything else fails at once, without a
// lookup or a connection on the normal network.
func TestDialMeshRefusesWhatIsNotInTheMap(t *testing.T) {
	co, key := newMesh(t)
	a := startNode(t, co, key, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for addr, want := range map[string]error{
		"ghost:80":               ErrNotInMesh,
		"localhost:80":           ErrNotInMesh,
		"127.0.0.1:80":           ErrNotInMesh,
		"ghost.mesh.internal:80": nametable.ErrNoSuchNode,
	} {
		if c, err := a.DialMesh(ctx, "tcp", addr); !errors.Is(err, want) {
			if c != nil {
				c.Close()
			}
			t.Errorf("DialMesh(%s): %v, want %v", addr, err, want)
		}
	}
}

// MESH_CONNECT: an app that knows nothing of proxies connects to
// 127.0.0.1:LOCAL on beta and talks to alpha's localhost server.
func TestConnectForwardsToAPeerByName(t *testing.T) {
	co, key := newMesh(t)
	startNode(t, co, key, "alpha")
	portA := echoServer(t, "alpha")
	local := freeTCPPort(t)
	rules, err := localfwd.Parse(fmt.Sprintf("%d:alpha:%s", local, portA))
	if err != nil {
		t.Fatal(err)
	}
	b := newNode(t, co, key, "beta", func(c *Config) { c.Connect = rules })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a plain connection to the local port reaches alpha", func() (bool, string) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), 5*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return line == "hello from alpha\n", fmt.Sprintf("%q, %v", line, err)
	})
}

// A MESH_CONNECT port that is taken fails Start before it registers, with
// an error that names the port.
func TestStartFailsWhenAConnectPortIsTaken(t *testing.T) {
	co, key := newMesh(t)
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	rules, _ := localfwd.Parse(fmt.Sprintf("%d:db:5432", port))
	n := newNode(t, co, key, "busy", func(c *Config) { c.Connect = rules })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Start(ctx)
	var se *StartError
	if !errors.As(err, &se) || se.Stage != StageLocal || !strings.Contains(err.Error(), fmt.Sprintf("local port %d", port)) {
		t.Fatalf("Start: %v; want a local failure naming port %d", err, port)
	}
	if nodes := co.Nodes(); len(nodes) != 0 {
		t.Fatalf("registered despite the local failure: %+v", nodes)
	}
}

// MESH_WAIT_FOR: Start returns only after the peer, which joins later,
// accepted a connection; a peer that never comes fails Start naming it.
func TestWaitForHoldsStartUntilThePeerAnswers(t *testing.T) {
	co, key := newMesh(t)
	port := echoServer(t, "alpha")
	p, _ := strconv.Atoi(port)
	b := newNode(t, co, key, "beta", func(c *Config) {
		c.WaitFor = []hostport.HostPort{{Host: "alpha", Port: uint16(p)}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- b.Start(ctx) }()
	eventually(t, "beta is in the mesh and waiting", func() (bool, string) {
		return len(co.Nodes()) == 1, fmt.Sprint(co.Nodes())
	})
	select {
	case err := <-started:
		t.Fatalf("Start returned (%v) before alpha existed", err)
	default:
	}
	startNode(t, co, key, "alpha")
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func TestWaitForTimeoutNamesThePeer(t *testing.T) {
	co, key := newMesh(t)
	n := newNode(t, co, key, "beta", func(c *Config) {
		c.WaitFor = []hostport.HostPort{{Host: "db", Port: 5432}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := n.Start(ctx)
	var se *StartError
	if !errors.As(err, &se) || se.Kind != KindPeersSilent || !strings.Contains(err.Error(), "MESH_WAIT_FOR: db:5432 did not answer") {
		t.Fatalf("Start: %v; want MESH_WAIT_FOR naming db:5432", err)
	}
}

func freeTCPPort(t *testing.T) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
