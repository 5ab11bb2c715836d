package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// waitLimit bounds every wait for something that takes milliseconds when
// it works. It is generous because a passing test never waits it out, while
// a loaded machine (a spy reading 100 MB of /proc/PID/mem, CI neighbours)
// can stretch milliseconds into seconds.
const waitLimit = 60 * time.Second

// nodeSpec describes one meshinit to start.
type nodeSpec struct {
	coord    string // MESH_COORDINATOR
	key      string // MESH_AUTHKEY ("" with keyFile)
	keyFile  string // MESH_AUTHKEY_FILE
	hostname string // MESH_HOSTNAME
	netns    string // run inside this network namespace ("" = the test's)
	uts      string // run in a new UTS namespace with this hostname (as a container has)
	env      []string
	command  []string // the command after "--"; defaults to meshdemo hang
	// resolvConf is bind-mounted over /etc/resolv.conf in the node's mount
	// namespace, as Docker does; "" gives the node an empty one of its own
	// (a TUN node rewrites it: never the host's).
	resolvConf string
	bin        string   // the meshinit binary; defaults to the harness's
	wrap       []string // runs meshinit (as its last argument list) inside the PID namespace
	args       []string // meshinit's own arguments before "--"
}

// meshinit is one running meshinit, PID 1 of its own PID namespace.
type meshinit struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdout  *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	exited  chan struct{}
	state   *os.ProcessState
	pid     int // meshinit's pid as the test sees it
	socket  string
	started time.Time
}

// demo is the path of the meshdemo binary (built once).
func demo(t *testing.T) string { return harness.Binary(t, "meshdemo") }

func shortDir(t *testing.T) string {
	// unix socket paths must stay under 108 bytes
	d, err := os.MkdirTemp("", "mm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startMeshinit runs meshinit as PID 1 of a new PID namespace (optionally
// inside a network namespace). Its control socket is in a temp dir; its
// proxy is on a free port unless spec.env says otherwise.
func startMeshinit(t *testing.T, spec nodeSpec) *meshinit {
	t.Helper()
	bin := spec.bin
	if bin == "" {
		bin = harness.Binary(t, "meshinit")
	}
	command := spec.command
	if command == nil {
		command = []string{demo(t), "hang"}
	}
	argv := []string{harness.LookPath(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"}
	if spec.uts != "" {
		// sh sets the hostname, then becomes meshinit (still PID 1).
		argv = append(argv, "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, spec.uts)
	}
	resolv := spec.resolvConf
	if resolv == "" {
		resolv = filepath.Join(t.TempDir(), "resolv.conf")
		if err := os.WriteFile(resolv, []byte("# no nameserver: the test's node resolves nothing outside the mesh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	argv = append(argv, "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolv)
	argv = append(argv, spec.wrap...)
	argv = append(argv, bin)
	argv = append(argv, spec.args...)
	argv = append(argv, "--")
	argv = append(argv, command...)
	if spec.netns != "" {
		argv = append([]string{harness.LookPath(t, "ip"), "netns", "exec", spec.netns}, argv...)
	}
	m := &meshinit{t: t, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, exited: make(chan struct{}),
		socket: filepath.Join(shortDir(t), "ctl.sock")}
	// spec.env overrides these defaults (a process sees the first of two
	// entries with one name, so the defaults it sets are left out).
	overridden := func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(spec.env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
	}
	env := slices.DeleteFunc([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"MESH_COORDINATOR=" + spec.coord,
		"MESH_CONTROL_SOCKET=" + m.socket,
		"MESH_WAIT_TIMEOUT=10s",
		"MESH_LOG_LEVEL=debug",
		// Nodes of one test share a loopback: each proxy takes a free port.
		"MESH_PROXY=127.0.0.1:0",
	}, overridden)
	if spec.hostname != "" {
		env = append(env, "MESH_HOSTNAME="+spec.hostname)
	}
	if spec.key != "" {
		env = append(env, "MESH_AUTHKEY="+spec.key)
	}
	if spec.keyFile != "" {
		env = append(env, "MESH_AUTHKEY_FILE="+spec.keyFile)
	}
	env = append(env, spec.env...)
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.Env = env
	m.cmd.Stdout, m.cmd.Stderr = m.stdout, m.stderr
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	go func() {
		m.cmd.Wait()
		m.state = m.cmd.ProcessState
		close(m.exited)
	}()
	t.Cleanup(m.kill)
	m.pid = m.findPID1()
	return m
}

// findPID1 finds meshinit: the process unshare forked, PID 1 inside.
func (m *meshinit) findPID1() int {
	m.t.Helper()
	var pid int
	parent := m.cmd.Process.Pid // ip netns exec execs unshare in place
	harness.Eventually(m.t, waitLimit, "unshare forks meshinit as PID 1", func() (bool, string) {
		select {
		case <-m.exited:
			m.t.Fatalf("unshare exited at once: %v\nstderr:\n%s", m.state, m.stderr)
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, "no child yet"
		}
		pid, _ = strconv.Atoi(f[0])
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return false, err.Error()
		}
		for _, line := range strings.Split(string(st), "\n") {
			if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
				ids := strings.Fields(rest)
				return len(ids) == 2 && ids[1] == "1", "NSpid " + rest
			}
		}
		return false, "no NSpid line"
	})
	return pid
}

// kill ends the namespace (SIGKILL to its PID 1) if it still runs.
func (m *meshinit) kill() {
	select {
	case <-m.exited:
		return
	default:
	}
	syscall.Kill(m.pid, syscall.SIGKILL)
	m.cmd.Process.Kill()
	<-m.exited
	if m.t.Failed() {
		m.t.Logf("meshinit %d stderr:\n%s", m.pid, m.stderr)
	}
}

func (m *meshinit) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := syscall.Kill(m.pid, sig); err != nil {
		m.t.Fatalf("kill(%d, %v): %v", m.pid, sig, err)
	}
}

// wait returns meshinit's exit code (128+N for a signal), failing after
// limit.
func (m *meshinit) wait(limit time.Duration) int {
	m.t.Helper()
	select {
	case <-m.exited:
	case <-time.After(limit):
		m.t.Fatalf("meshinit still running after %v\nstderr:\n%s", limit, m.stderr)
	}
	ws := m.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// status asks meshinit's control socket, as "meshinit status --json" does.
func (m *meshinit) status() (ctlsock.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ctlsock.NewClient(m.socket).Status(ctx)
}

// waitUp waits until the node is up and returns its status.
func (m *meshinit) waitUp() ctlsock.Status {
	m.t.Helper()
	var st ctlsock.Status
	harness.Eventually(m.t, waitLimit, "node up", func() (bool, string) {
		select {
		case <-m.exited:
			m.t.Fatalf("meshinit exited (%v) before the node was up\nstderr:\n%s", m.state, m.stderr)
		default:
		}
		var err error
		st, err = m.status()
		if err != nil {
			return false, err.Error()
		}
		return st.State == ctlsock.StateUp, "state " + st.State
	})
	return st
}

// waitOutput waits until the command printed want on stdout: it is
// running and has set up its signal handling.
func (m *meshinit) waitOutput(want string) {
	m.t.Helper()
	harness.Eventually(m.t, waitLimit, fmt.Sprintf("the command prints %q", want), func() (bool, string) {
		select {
		case <-m.exited:
			m.t.Fatalf("meshinit exited (%v) before the command printed %q\nstdout:\n%s\nstderr:\n%s", m.state, want, m.stdout, m.stderr)
		default:
		}
		return strings.Contains(m.stdout.String(), want), "stdout: " + m.stdout.String()
	})
}

// cli runs "meshinit args..." against this node's control socket.
func (m *meshinit) cli(args ...string) (string, error) {
	cmd := exec.Command(harness.Binary(m.t, "meshinit"), args...)
	cmd.Env = []string{"MESH_CONTROL_SOCKET=" + m.socket}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// deletion waits for the deleted event of the node named name whose seq
// is after since, and returns it.
func deletion(t *testing.T, c *coordtest.Coordinator, name string, since uint64, limit time.Duration) meshapi.Event {
	t.Helper()
	return c.WaitEvent(t, limit, func(e meshapi.Event) bool {
		return e.Seq > since && e.Type == meshapi.EventDeleted && e.Name == name
	})
}

// lastSeq is the sequence number of the newest event.
func lastSeq(t *testing.T, c *coordtest.Coordinator) uint64 {
	t.Helper()
	evs := c.Events(t)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// get runs "meshdemo get" (retrying for up to retryFor) inside netns with the proxy settings of a node
// whose proxy listens on the default port there.
func get(t *testing.T, netns, via, url string, retryFor time.Duration) (string, error) {
	t.Helper()
	argv := []string{harness.LookPath(t, "ip"), "netns", "exec", netns, demo(t), "get", "-via", via, "-timeout", retryFor.String(), url}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"HTTP_PROXY=http://127.0.0.1:1055", "ALL_PROXY=socks5h://127.0.0.1:1055"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// keyFile writes a key to a 0600 file, as a Docker secret would be.
func keyFile(t *testing.T, key string) string {
	p := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeStatus(s string) (ctlsock.Status, error) {
	var st ctlsock.Status
	err := json.Unmarshal([]byte(s), &st)
	return st, err
}

// httpStatus GETs url from inside the network namespace ns and returns the
// status code.
func httpStatus(t *testing.T, ns, url string) int {
	t.Helper()
	resp, err := httpClientInNetns(ns).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
