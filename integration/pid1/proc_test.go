package pid1

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/syncbuf"
)

// mode is how meshinit is started.
type mode int

const (
	asChild mode = iota // a child of the test process: subreaper path
	asPID1              // PID 1 of a new PID namespace with its own /proc
)

func (m mode) String() string {
	if m == asPID1 {
		return "pid1"
	}
	return "child"
}

// bothModes runs f once per mode as subtests.
func bothModes(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range []mode{asChild, asPID1} {
		t.Run(m.String(), func(t *testing.T) { f(t, m) })
	}
}

// waitLimit bounds every wait for a process; it is a hang detector, not a
// speed requirement.
const waitLimit = 20 * time.Second

// proc is one started meshinit (or hookinit), with its output collected.
type proc struct {
	t       *testing.T
	mode    mode
	cmd     *exec.Cmd
	stdout  *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	outEOF  chan struct{} // closed when no process holds stdout open any more
	errEOF  chan struct{} // the same for stderr
	exited  chan struct{} // closed when cmd.Wait returned
	state   *os.ProcessState
	initPid int // meshinit's pid as the test sees it
}

type startOpts struct {
	env   []string // added to the test's environment
	dir   string
	stdin io.Reader
	// brokenStderr: stderr is a pipe whose read end is closed at once, so
	// every write to it fails with EPIPE (and raises SIGPIPE).
	brokenStderr bool
}

// start runs bin args... in mode m. stdout is a pipe of our own, so that a
// descendant that survives meshinit is visible: outEOF never closes.
func start(t *testing.T, m mode, bin string, args []string, o startOpts) *proc {
	t.Helper()
	argv := append([]string{bin}, args...)
	if m == asPID1 {
		argv = append([]string{harness.LookPath(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Dir = o.dir
	cmd.Stdin = o.stdin
	p := &proc{t: t, mode: m, cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{},
		outEOF: make(chan struct{}), errEOF: make(chan struct{}), exited: make(chan struct{})}
	// Pipes of our own rather than exec's copying: cmd.Wait must return
	// when meshinit exits, even if a descendant still holds the pipes.
	rOut, wOut, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rErr, wErr, err := os.Pipe()
	if err != nil {
		rOut.Close()
		wOut.Close()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = wOut, wErr
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{rOut, wOut, rErr, wErr} {
			f.Close()
		}
		t.Fatalf("start %v: %v", argv, err)
	}
	wOut.Close()
	wErr.Close()
	go func() {
		_, _ = io.Copy(p.stdout, rOut)
		rOut.Close()
		close(p.outEOF)
	}()
	go func() {
		if !o.brokenStderr {
			_, _ = io.Copy(p.stderr, rErr)
		}
		rErr.Close()
		close(p.errEOF)
	}()
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// pid is meshinit's pid as the test sees it: in asPID1 mode the process
// unshare forked, found on first use (a quick run may be over before
// anyone asks).
func (p *proc) pid() int {
	p.t.Helper()
	if p.initPid == 0 {
		p.initPid = p.cmd.Process.Pid
		if p.mode == asPID1 {
			p.initPid = p.nsInit()
		}
	}
	return p.initPid
}

// nsInit finds the PID-1 process unshare forked.
func (p *proc) nsInit() int {
	p.t.Helper()
	var pid int
	harness.Eventually(p.t, waitLimit, "unshare forks the namespace's PID 1", func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
		if err != nil {
			select {
			case <-p.exited:
				p.t.Fatalf("unshare exited before its child was seen\nstderr:\n%s", p.stderr.String())
			default:
			}
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, "no child yet"
		}
		pid, _ = strconv.Atoi(f[0])
		return pid > 0, "bad children list " + string(b)
	})
	return pid
}

// kill ends everything the test started, even when it failed half-way: the
// namespace dies with its PID 1; outside one, the children sigchild
// reported are killed by pid after checking they are still sigchild.
func (p *proc) kill() {
	select {
	case <-p.exited:
	default:
		if p.initPid != 0 {
			_ = syscall.Kill(p.initPid, syscall.SIGKILL)
		}
		// unshare --kill-child: the namespace's PID 1 dies with unshare.
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	for _, pid := range reportedPids(p.stdout.String()) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), "sigchild") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// reportedPids are the pids sigchild printed in its ready lines.
func reportedPids(out string) []int {
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ready pid="); ok {
			if n, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// signal sends sig to meshinit (PID 1 of the namespace in asPID1 mode).
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.pid(), sig); err != nil {
		p.t.Fatalf("kill(%d, %v): %v", p.pid(), sig, err)
	}
}

// waitOutput polls stdout until it contains want.
func (p *proc) waitOutput(want string) {
	p.t.Helper()
	harness.Eventually(p.t, waitLimit, fmt.Sprintf("output contains %q", want), func() (bool, string) {
		out := p.stdout.String()
		return strings.Contains(out, want), fmt.Sprintf("stdout:\n%s\nstderr:\n%s", out, p.stderr.String())
	})
}

// countOutput polls until want appears n times in stdout.
func (p *proc) countOutput(want string, n int) {
	p.t.Helper()
	harness.Eventually(p.t, waitLimit, fmt.Sprintf("%d× %q in output", n, want), func() (bool, string) {
		out := p.stdout.String()
		return strings.Count(out, want) >= n, fmt.Sprintf("stdout:\n%s\nstderr:\n%s", out, p.stderr.String())
	})
}

// readyPid waits for sigchild's ready line and returns the pid in it (as
// the child sees itself: in asPID1 mode a pid of the namespace).
func (p *proc) readyPid() int {
	p.t.Helper()
	p.waitOutput("ready pid=")
	return reportedPids(p.stdout.String())[0]
}

// wait waits for the process to exit and returns its exit code (-1 with
// the signal if it died of one).
func (p *proc) wait() (code int, sig syscall.Signal) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		p.t.Fatalf("meshinit did not exit within %v (hang)\nstdout:\n%s\nstderr:\n%s", waitLimit, p.stdout.String(), p.stderr.String())
	}
	ws := p.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, ws.Signal()
	}
	return ws.ExitStatus(), 0
}

// waitCode waits and fails unless the exit code is want.
func (p *proc) waitCode(want int) {
	p.t.Helper()
	code, sig := p.wait()
	if code != want {
		p.t.Fatalf("exit code %d (signal %v), want %d\nstdout:\n%s\nstderr:\n%s", code, sig, want, p.stdout.String(), p.stderr.String())
	}
}

// waitNoSurvivor fails if some process still holds stdout open after
// meshinit exited: a descendant was left running.
func (p *proc) waitNoSurvivor() {
	p.t.Helper()
	limit := time.After(waitLimit)
	for _, eof := range []chan struct{}{p.outEOF, p.errEOF} {
		select {
		case <-eof:
		case <-limit:
			p.t.Fatalf("a descendant of meshinit still runs %v after it exited\nstdout:\n%s", waitLimit, p.stdout.String())
		}
	}
}

// runQuick runs meshinit to completion with no input and returns the exit
// code, stdout and stderr.
func runQuick(t *testing.T, m mode, bin string, args []string, o startOpts) (int, string, string) {
	t.Helper()
	p := start(t, m, bin, args, o)
	code, sig := p.wait()
	if sig != 0 {
		t.Fatalf("meshinit died of %v\nstderr:\n%s", sig, p.stderr.String())
	}
	p.waitNoSurvivor()
	return code, p.stdout.String(), p.stderr.String()
}
