package pid1

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// slack is how late a deadline may be observed on a loaded machine. The
// tests check that deadlines are kept, not how fast anything is: every
// lower bound is exact, every upper bound is the deadline plus slack, far
// below what the failure would take (a 60 s hook, a child that never ends).
const slack = 1500 * time.Millisecond

// TestStopNeverCutsShutdownShort: as a plain init (no key), a command
// that ignores SIGTERM keeps running past MESH_STOP_TIMEOUT, grandchild
// and all; meshinit waits for it as tini does and exits with its code.
func TestStopNeverCutsShutdownShort(t *testing.T) {
	bin, child := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		// sigchild reports SIGTERM and carries on; it dies of SIGINT.
		p := start(t, m, bin, []string{"--", child, "-spawn", "1", "-exit-on", "2"}, startOpts{env: []string{"MESH_STOP_TIMEOUT=1s", "MESH_KILL_GROUP=1"}})
		p.countOutput("ready pid=", 2)
		t0 := time.Now()
		p.signal(syscall.SIGTERM)
		p.countOutput("got=15\n", 2)
		// Well past the deadline: still there.
		time.Sleep(time.Until(t0.Add(time.Second + slack)))
		select {
		case <-p.exited:
			t.Fatalf("meshinit exited %v after SIGTERM: the command's shutdown was cut short\nstderr:\n%s", time.Since(t0), p.stderr.String())
		default:
		}
		if strings.Contains(p.stdout.String(), "got=9") || strings.Contains(p.stderr.String(), "killing") {
			t.Fatalf("something was killed:\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
		}
		p.signal(syscall.SIGINT) // to the group: child and grandchild end
		p.waitCode(128 + int(syscall.SIGINT))
		p.waitNoSurvivor()
	})
}

// TestStopKillOptIn: with MESH_STOP_KILL=1 a command that ignores SIGTERM
// is killed, with its process group, when MESH_STOP_TIMEOUT has passed
// since the first SIGTERM, and meshinit exits 137 (128+SIGKILL) at that
// moment, not before.
func TestStopKillOptIn(t *testing.T) {
	bin, child := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		// sigchild catches SIGTERM and carries on; so does its grandchild.
		p := start(t, m, bin, []string{"--", child, "-spawn", "1"}, startOpts{env: []string{"MESH_STOP_TIMEOUT=1s", "MESH_STOP_KILL=1"}})
		p.countOutput("ready pid=", 2)
		t0 := time.Now()
		p.signal(syscall.SIGTERM)
		p.countOutput("got=15\n", 1)
		p.waitCode(137)
		elapsed := time.Since(t0)
		if elapsed < time.Second || elapsed > time.Second+slack {
			t.Fatalf("exited %v after SIGTERM, want the 1s deadline", elapsed)
		}
		p.waitNoSurvivor() // the grandchild was killed with the group
	})
}

// hookRecord is one BeforeExit call as hookinit wrote it.
type hookRecord struct{ start, deadline time.Time }

func readHookFile(t *testing.T, path string) []hookRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []hookRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r hookRecord
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("bad hook line %q", line)
			}
			switch k {
			case "start":
				r.start = time.Unix(0, n)
			case "deadline":
				r.deadline = time.Unix(0, n)
			}
		}
		out = append(out, r)
	}
	return out
}

// onlyHookCall fails unless BeforeExit ran exactly once, and returns it.
func onlyHookCall(t *testing.T, path string) hookRecord {
	t.Helper()
	calls := readHookFile(t, path)
	if len(calls) != 1 {
		t.Fatalf("BeforeExit ran %d times, want exactly once: %v", len(calls), calls)
	}
	return calls[0]
}

// TestStopBudget drives the stop budget through hookinit (shim.Run with a
// fake BeforeExit that records when it ran and the deadline it was given).
func TestStopBudget(t *testing.T) {
	_, child := setup(t)
	hookinit := prog(t, "hookinit")

	t.Run("slow child: hook when only the reserve is left, the child runs on", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			hooks := filepath.Join(t.TempDir(), "hooks")
			p := start(t, m, hookinit, []string{"-stop-timeout", "2s", "-logout-reserve", "1s", "-hook-file", hooks, "--", child, "-exit-on", "2"}, startOpts{})
			p.readyPid()
			t0 := time.Now()
			p.signal(syscall.SIGTERM)
			harness.Eventually(t, waitLimit, "the hook runs", func() (bool, string) { return len(readHookFile(t, hooks)) == 1, "no hook call yet" })
			call := onlyHookCall(t, hooks)
			if at := call.start.Sub(t0); at < time.Second || at > time.Second+slack {
				t.Errorf("hook started %v after SIGTERM, want when 1s of the 2s budget is left", at)
			}
			time.Sleep(time.Until(t0.Add(2*time.Second + slack)))
			select {
			case <-p.exited:
				t.Fatalf("exited %v after SIGTERM: the child was not let finish\nstderr:\n%s", time.Since(t0), p.stderr.String())
			default:
			}
			p.signal(syscall.SIGINT)
			p.waitCode(128 + int(syscall.SIGINT))
			onlyHookCall(t, hooks)
		})
	})

	t.Run("slow child with -stop-kill: hook at the reserve point, kill at the deadline", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			hooks := filepath.Join(t.TempDir(), "hooks")
			p := start(t, m, hookinit, []string{"-stop-timeout", "2s", "-logout-reserve", "1s", "-stop-kill", "-hook-file", hooks, "--", child}, startOpts{})
			p.readyPid()
			t0 := time.Now()
			p.signal(syscall.SIGTERM)
			p.waitCode(137)
			end := time.Since(t0)
			call := onlyHookCall(t, hooks)
			if at := call.start.Sub(t0); at < time.Second || at > time.Second+slack {
				t.Errorf("hook started %v after SIGTERM, want when 1s of the 2s budget is left", at)
			}
			if d := call.deadline.Sub(t0); d < 2*time.Second || d > 2*time.Second+slack {
				t.Errorf("hook deadline %v after SIGTERM, want the stop deadline (2s)", d)
			}
			if end < 2*time.Second || end > 2*time.Second+slack {
				t.Errorf("exited %v after SIGTERM, want at the 2s deadline", end)
			}
		})
	})

	t.Run("child exits on TERM: hook right after, exit with the child's code", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			hooks := filepath.Join(t.TempDir(), "hooks")
			p := start(t, m, hookinit, []string{"-stop-timeout", "10s", "-logout-reserve", "3s", "-hook-file", hooks, "--", child, "-exit-on", "15"}, startOpts{})
			p.readyPid()
			t0 := time.Now()
			p.signal(syscall.SIGTERM)
			p.waitCode(143)
			call := onlyHookCall(t, hooks)
			// Not waiting for the reserve point (7s): it ran at the child's exit.
			if at := call.start.Sub(t0); at > slack {
				t.Errorf("hook started %v after SIGTERM; the child exited at once", at)
			}
			if call.deadline.After(t0.Add(10 * time.Second)) {
				t.Errorf("hook deadline %v is past the stop deadline", call.deadline.Sub(t0))
			}
		})
	})

	t.Run("child exits by itself: hook once with the reserve as its limit", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			hooks := filepath.Join(t.TempDir(), "hooks")
			code, _, stderr := runQuick(t, m, hookinit, []string{"-logout-reserve", "3s", "-hook-file", hooks, "--", "/bin/sh", "-c", "exit 5"}, startOpts{})
			if code != 5 {
				t.Fatalf("exit %d, want 5\n%s", code, stderr)
			}
			call := onlyHookCall(t, hooks)
			if got := call.deadline.Sub(call.start); got <= 0 || got > 3*time.Second {
				t.Errorf("hook got %v, want at most the 3s reserve", got)
			}
		})
	})

	t.Run("hook ignoring its deadline never delays exit", func(t *testing.T) {
		cases := []struct {
			name  string
			child []string
			code  int
			limit time.Duration
		}{
			// Child still running: hook at the reserve point, kill and exit
			// at the 2s stop deadline.
			{"slow child", []string{child}, 137, 2 * time.Second},
			// Child gone at once: the hook has its 1s reserve, no more.
			{"child exits on TERM", []string{child, "-exit-on", "15"}, 143, time.Second},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				bothModes(t, func(t *testing.T, m mode) {
					hooks := filepath.Join(t.TempDir(), "hooks")
					args := append([]string{"-stop-timeout", "2s", "-logout-reserve", "1s", "-stop-kill", "-hook-file", hooks,
						"-hook-sleep", "60s", "-hook-ignore-ctx", "--"}, c.child...)
					p := start(t, m, hookinit, args, startOpts{})
					p.readyPid()
					t0 := time.Now()
					p.signal(syscall.SIGTERM)
					p.waitCode(c.code)
					if end := time.Since(t0); end > c.limit+slack {
						t.Fatalf("exited %v after SIGTERM: the 60s hook delayed exit past %v", end, c.limit)
					}
					onlyHookCall(t, hooks)
				})
			})
		}
	})

	t.Run("failed start-up: 125, hook runs, command never starts", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			hooks, marker := filepath.Join(dir, "hooks"), filepath.Join(dir, "ran")
			code, _, stderr := runQuick(t, m, hookinit, []string{"-prepare-fail", "-hook-file", hooks, "--", "/bin/sh", "-c", "touch " + marker}, startOpts{})
			if code != 125 {
				t.Fatalf("exit %d, want 125\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "fake prepare failure") {
				t.Errorf("stderr does not give the reason:\n%s", stderr)
			}
			onlyHookCall(t, hooks)
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran after a failed start-up")
			}
		})
	})

	t.Run("stop during a slow start-up gives up when only the reserve is left", func(t *testing.T) {
		bothModes(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			hooks, marker, ran := filepath.Join(dir, "hooks"), filepath.Join(dir, "prepare"), filepath.Join(dir, "ran")
			p := start(t, m, hookinit, []string{"-stop-timeout", "2s", "-logout-reserve", "1s", "-hook-file", hooks,
				"-prepare-marker", marker, "-prepare-release", filepath.Join(dir, "never"), "--", "/bin/sh", "-c", "touch " + ran}, startOpts{})
			waitFile(t, marker)
			t0 := time.Now()
			p.signal(syscall.SIGTERM)
			p.waitCode(125)
			if end := time.Since(t0); end < time.Second || end > 2*time.Second+slack {
				t.Errorf("exited %v after SIGTERM, want between the reserve point (1s) and the deadline (2s)", end)
			}
			onlyHookCall(t, hooks)
			if _, err := os.Stat(ran); err == nil {
				t.Fatal("the command ran although start-up was abandoned")
			}
		})
	})

	t.Run("prepare's environment reaches the command", func(t *testing.T) {
		code, out, stderr := runQuick(t, asChild, hookinit, []string{"-prepare-env", "MESH_NAME=web.mesh.test", "--", "/bin/sh", "-c", "echo name=$MESH_NAME"}, startOpts{})
		if code != 0 || out != "name=web.mesh.test\n" {
			t.Fatalf("exit %d, out %q\n%s", code, out, stderr)
		}
	})
}
