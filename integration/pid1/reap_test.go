package pid1

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// orphanScript makes 100 orphans: each subshell starts a short-lived
// process in the background and exits at once, so the process is
// reparented to meshinit (PID 1, or the subreaper), which must reap it.
// Then the command waits on stdin so meshinit keeps running.
const orphanScript = `i=0
while [ $i -lt 100 ]; do (sh -c 'exit 0' &); i=$((i+1)); done
echo spawned
exec cat`

// TestReapsOrphans: 100 orphans are reaped, none stays a zombie. As PID 1
// the whole namespace is checked; as a subreaper, meshinit's children.
// Each reaped orphan is logged at debug level, so the count is exact.
func TestReapsOrphans(t *testing.T) {
	bin, _ := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		stdin, feed, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		defer feed.Close()
		p := start(t, m, bin, []string{"--", "/bin/sh", "-c", orphanScript}, startOpts{stdin: stdin, env: []string{"MESH_LOG_LEVEL=debug"}})
		p.waitOutput("spawned")
		harness.Eventually(t, waitLimit, "all 100 orphans reaped", func() (bool, string) {
			n := strings.Count(p.stderr.String(), `msg="reaped orphan"`)
			return n == 100, fmt.Sprintf("%d reaped", n)
		})
		harness.Eventually(t, waitLimit, "no zombies left", func() (bool, string) {
			var procs []procInfo
			if m == asPID1 {
				procs = namespaceProcs(t, p.pid())
			} else {
				procs = childrenOf(t, p.pid())
			}
			var zombies []string
			for _, pr := range procs {
				if pr.state == "Z" {
					zombies = append(zombies, pr.String())
				}
			}
			return len(zombies) == 0, fmt.Sprintf("zombies: %v", zombies)
		})
		if m == asPID1 {
			// Only meshinit and cat are left in the namespace.
			procs := namespaceProcs(t, p.pid())
			if len(procs) != 2 {
				t.Fatalf("namespace holds %d processes, want meshinit and cat: %v", len(procs), procs)
			}
		}
		feed.Close()
		p.waitCode(0)
	})
}

// TestSubreaper: when not PID 1, meshinit is a child subreaper: an orphan
// of the command is reparented to meshinit and reaped when it exits. With
// MESH_SUBREAPER=0 it is not.
func TestSubreaper(t *testing.T) {
	bin, _ := setup(t)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("subreaper=%v", on), func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "orphan.pid")
			stdin, feed, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			defer feed.Close()
			// The inner sh exits (and is waited for) before "spawned", so the
			// sleep is already an orphan when the test looks.
			script := fmt.Sprintf(`sh -c 'sleep 1000 >/dev/null 2>&1 & echo $! > %s'; echo spawned; exec cat`, pidFile)
			env := []string{"MESH_SUBREAPER=" + map[bool]string{true: "1", false: "0"}[on]}
			p := start(t, asChild, bin, []string{"--", "/bin/sh", "-c", script}, startOpts{stdin: stdin, env: env})
			p.waitOutput("spawned")
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			orphan, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
			parent := statusField(t, orphan, "PPid")
			if on != (parent == strconv.Itoa(p.pid())) {
				t.Fatalf("orphan %d has parent %s; meshinit is %d, subreaper=%v", orphan, parent, p.pid(), on)
			}
			if on {
				// meshinit reaps it: the pid disappears instead of staying a
				// zombie.
				if err := syscall.Kill(orphan, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				harness.Eventually(t, waitLimit, "orphan reaped", func() (bool, string) {
					_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
					return os.IsNotExist(err), "state " + statusFieldOr(orphan, "State")
				})
			}
			feed.Close()
			p.waitCode(0)
		})
	}
}

// TestChildExitsWhileGrandchildrenLive: meshinit does not wait for the
// command's descendants; it exits with the command's code. As PID 1 the
// kernel then ends the namespace, so nothing survives.
func TestChildExitsWhileGrandchildrenLive(t *testing.T) {
	bin, _ := setup(t)
	t.Run("pid1", func(t *testing.T) {
		p := start(t, asPID1, bin, []string{"--", "/bin/sh", "-c", "sleep 1000 & sleep 1000 & exit 7"}, startOpts{})
		p.waitCode(7)
		p.waitNoSurvivor() // the sleeps held stdout: they are gone too
	})
	t.Run("child", func(t *testing.T) {
		p := start(t, asChild, bin, []string{"--", "/bin/sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo bg=$!; exit 7"}, startOpts{})
		p.waitCode(7)
		// The sleep may outlive meshinit here (no namespace ends it): kill
		// it, and fail rather than leave it running if its pid is unreadable.
		// Its stdout is /dev/null, so the pipe's EOF means all the command
		// wrote has been collected.
		p.waitNoSurvivor()
		out := p.stdout.String()
		pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "bg=")))
		if err != nil {
			t.Fatalf("no background pid in the command's output %q: %v", out, err)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
}

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid   int
	state string
	comm  string
}

func (p procInfo) String() string { return fmt.Sprintf("%d(%s,%s)", p.pid, p.comm, p.state) }

// namespaceProcs lists the processes in the PID namespace of pid, seen
// from outside: those whose /proc/N/ns/pid is the same namespace.
func namespaceProcs(t *testing.T, pid int) []procInfo {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	return listProcs(func(n int) bool {
		other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n))
		return err == nil && other == ns
	})
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []procInfo {
	t.Helper()
	want := strconv.Itoa(pid)
	return listProcs(func(n int) bool { return statusFieldOr(n, "PPid") == want })
}

func listProcs(keep func(pid int) bool) []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || !keep(n) {
			continue
		}
		state := statusFieldOr(n, "State")
		if state == "" {
			continue // gone meanwhile
		}
		out = append(out, procInfo{pid: n, state: strings.Fields(state)[0], comm: statusFieldOr(n, "Name")})
	}
	return out
}

// statusField reads one field of /proc/pid/status or fails.
func statusField(t *testing.T, pid int, field string) string {
	t.Helper()
	v := statusFieldOr(pid, field)
	if v == "" {
		t.Fatalf("/proc/%d/status has no %s (process gone?)", pid, field)
	}
	return v
}

// statusFieldOr reads one field of /proc/pid/status, "" if unavailable.
func statusFieldOr(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
