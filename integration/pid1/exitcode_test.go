package pid1

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestExitCodes: meshinit exits with every code 0..255 its command exits
// with.
func TestExitCodes(t *testing.T) {
	bin, _ := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		for code := 0; code <= 255; code++ {
			got, _, stderr := runQuick(t, m, bin, []string{"--", "/bin/sh", "-c", fmt.Sprintf("exit %d", code)}, startOpts{})
			if got != code {
				t.Fatalf("command exited %d, meshinit exited %d\nstderr:\n%s", code, got, stderr)
			}
		}
	})
}

// TestExitBySignal: a command killed by signal N makes meshinit exit
// 128+N, for every signal whose default action terminates the process.
func TestExitBySignal(t *testing.T) {
	bin, _ := setup(t)
	var sigs []syscall.Signal
	for n := syscall.Signal(1); n <= 64; n++ {
		switch n {
		case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, // stop, not terminate
			syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH, syscall.SIGCONT, // ignored by default
			32, 33: // reserved by C libraries
			continue
		}
		sigs = append(sigs, n)
	}
	bothModes(t, func(t *testing.T, m mode) {
		for _, sig := range sigs {
			// The shell kills itself: no trap is set, so the default action
			// applies.
			got, _, stderr := runQuick(t, m, bin, []string{"--", "/bin/sh", "-c", fmt.Sprintf("kill -%d $$", int(sig))}, startOpts{})
			if got != 128+int(sig) {
				t.Fatalf("command died of signal %d, meshinit exited %d, want %d\nstderr:\n%s", sig, got, 128+int(sig), stderr)
			}
		}
	})
}

// TestCommandNotRunnable: 127 when the command does not exist, 126 when it
// cannot be executed, each with a one-line reason on stderr.
func TestCommandNotRunnable(t *testing.T) {
	bin, _ := setup(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(dir, "bad-interpreter")
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		command string
		code    int
		reason  string
	}{
		{"missing in PATH", "no-such-command-meshinit-test", 127, "command not found"},
		{"missing path", filepath.Join(dir, "absent"), 127, "command not found"},
		{"no execute bit", notExec, 126, "permission denied"},
		{"directory", dir, 126, "is a directory"},
		{"missing interpreter", badInterp, 126, "interpreter"},
	}
	bothModes(t, func(t *testing.T, m mode) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, _, stderr := runQuick(t, m, bin, []string{"--", c.command}, startOpts{})
				if got != c.code {
					t.Fatalf("exit %d, want %d\nstderr:\n%s", got, c.code, stderr)
				}
				lines := strings.Split(strings.TrimSpace(stderr), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], c.reason) || !strings.HasPrefix(lines[0], "meshinit: ") {
					t.Fatalf("want one line from meshinit saying %q, got:\n%s", c.reason, stderr)
				}
			})
		}
	})
}

// TestOwnFailuresExit125: bad settings and a missing command are meshinit's
// own failures: 125 with a clear line, and the command never runs.
func TestOwnFailuresExit125(t *testing.T) {
	bin, _ := setup(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	touch := []string{"/bin/sh", "-c", "touch " + marker}
	// The mesh case opens the control socket first: keep it out of the
	// host's /run.
	socket := "MESH_CONTROL_SOCKET=" + filepath.Join(dir, "meshinit.sock")
	cases := []struct {
		name   string
		args   []string
		env    []string
		reason string
	}{
		{"no command", nil, nil, "no command given"},
		{"unknown flag", append([]string{"--no-such-flag", "--"}, touch...), nil, "no-such-flag"},
		{"bad stop timeout", append([]string{"--"}, touch...), []string{"MESH_STOP_TIMEOUT=soon"}, "MESH_STOP_TIMEOUT"},
		{"uncatchable stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=KILL"}, "MESH_STOP_SIGNAL"},
		// Signals meshinit cannot both receive and forward: refused, with
		// the allowed set named.
		{"SIGCHLD stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=SIGCHLD"}, "allowed are 1 to 31 except"},
		{"SIGURG stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=URG"}, "allowed are 1 to 31 except"},
		{"SIGPROF stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=27"}, "allowed are 1 to 31 except"},
		{"signal 32 as stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=32"}, "allowed are 1 to 31 except"},
		{"SIGRTMIN (34) as stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=SIGRTMIN"}, "allowed are 1 to 31 except"},
		{"SIGSTOP as stop signal", []string{"--stop-signal", "STOP", "--", "/bin/sh", "-c", "touch " + marker}, nil, "allowed are 1 to 31 except"},
		{"unknown stop signal", append([]string{"--"}, touch...), []string{"MESH_STOP_SIGNAL=SIGNOPE"}, "unknown signal"},
		{"bad log level", append([]string{"--"}, touch...), []string{"MESH_LOG_LEVEL=loud"}, "MESH_LOG_LEVEL"},
		{"bad net mode", append([]string{"--"}, touch...), []string{"MESH_NET=carrier-pigeon"}, "MESH_NET"},
		// With a key meshinit must join the mesh before the command starts;
		// a coordinator that cannot be reached (a closed loopback port)
		// means 125 and no command, whatever the mesh code does.
		{"mesh cannot come up", append([]string{"--"}, touch...), []string{"MESH_AUTHKEY=tskey-test-not-real", "MESH_COORDINATOR=http://127.0.0.1:1", "MESH_WAIT_TIMEOUT=3s", socket}, "start-up failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, stderr := runQuick(t, asChild, bin, c.args, startOpts{env: c.env})
			if got != 125 {
				t.Fatalf("exit %d, want 125\nstderr:\n%s", got, stderr)
			}
			if !strings.Contains(stderr, c.reason) {
				t.Fatalf("stderr does not explain (%q):\n%s", c.reason, stderr)
			}
			if strings.Contains(stderr, "tskey-test-not-real") {
				t.Fatalf("the auth key appears in meshinit's output:\n%s", stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran although meshinit failed")
			}
		})
	}
}
