package relay_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// node is a real meshinit (TUN mode) in a site namespace, as PID 1 of its
// own PID namespace, with a private /etc/resolv.conf.
type node struct {
	t      *testing.T
	name   string
	ns     string
	socket string
	cmd    *exec.Cmd
	logs   *syncbuf.Buffer
	exited chan struct{}
}

func startNode(t *testing.T, ns, coordURL, key, name string, env ...string) *node {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		harness.Missing(t, "/dev/net/tun")
	}
	dir, err := os.MkdirTemp("", "rn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("# the test's node resolves nothing outside the mesh\n"), 0o644)
	n := &node{t: t, name: name, ns: ns, socket: filepath.Join(dir, "ctl.sock"), logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	argv := []string{"netns", "exec", ns, harness.LookPath(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child",
		"sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolv,
		harness.Binary(t, "meshinit"), "--", harness.LookPath(t, "sleep"), "100000"}
	n.cmd = exec.Command("ip", argv...)
	n.cmd.Env = append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"MESH_COORDINATOR=" + coordURL, "MESH_AUTHKEY=" + key, "MESH_HOSTNAME=" + name,
		"MESH_NET=tun", "MESH_CONTROL_SOCKET=" + n.socket, "MESH_LOG_LEVEL=debug",
	}, env...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	select {
	case <-n.exited:
	default:
		n.cmd.Process.Signal(syscall.SIGKILL) // unshare --kill-child takes meshinit with it
		<-n.exited
	}
	if n.t.Failed() {
		n.t.Logf("node %s log:\n%s", n.name, n.logs)
	}
}

func (n *node) status() (ctlsock.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ctlsock.NewClient(n.socket).Status(ctx)
}

// waitUp waits until the node is up with peers peers.
func (n *node) waitUp(peers int) ctlsock.Status {
	n.t.Helper()
	var st ctlsock.Status
	harness.Eventually(n.t, 60*time.Second, n.name+" up", func() (bool, string) {
		select {
		case <-n.exited:
			n.t.Fatalf("node %s exited:\n%s", n.name, n.logs)
		default:
		}
		var err error
		if st, err = n.status(); err != nil {
			return false, err.Error()
		}
		return st.State == ctlsock.StateUp && len(st.Peers) == peers && st.Relay != nil && st.Relay.State == "connected",
			"state " + st.State
	})
	return st
}

// path is the node's path to its only peer.
func (n *node) path() ctlsock.PeerStatus {
	st, err := n.status()
	if err != nil || len(st.Peers) == 0 {
		return ctlsock.PeerStatus{}
	}
	return st.Peers[0]
}

// statusText runs "meshinit status" against the node, as a person would.
func (n *node) statusText() string {
	n.t.Helper()
	cmd := exec.Command(harness.Binary(n.t, "meshinit"), "status")
	cmd.Env = []string{"MESH_CONTROL_SOCKET=" + n.socket}
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("meshinit status: %v\n%s", err, out)
	}
	return string(out)
}
