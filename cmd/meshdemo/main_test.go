package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run this test binary as meshdemo: with meshdemoArgsEnv set,
// TestMain runs main with those arguments instead of the tests.
const meshdemoArgsEnv = "MESHDEMO_TEST_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(meshdemoArgsEnv); args != "" {
		os.Args = append([]string{"meshdemo"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The integration suites and the demo send SIGTERM the moment the command
// printed that it is ready; the command must already handle it then: serve
// exits with its -exit code, hang with 0. Repeated, as the window a late
// signal.Notify leaves is short.
func TestStopSignalRightAfterTheReadyLine(t *testing.T) {
	cases := []struct {
		args, ready string
		code        int
	}{
		{"serve -listen 127.0.0.1:0 -exit 42", "serving on", 42},
		{"hang", "hanging until SIGTERM", 0},
	}
	for _, c := range cases {
		for range 10 {
			if code := runUntilReadyThenTerm(t, c.args, c.ready); code != c.code {
				t.Fatalf("meshdemo %s: exit %d after SIGTERM right after %q, want %d", c.args, code, c.ready, c.code)
			}
		}
	}
}

func runUntilReadyThenTerm(t *testing.T, args, ready string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// GORACE: under -race a process sleeps a second at exit by default.
	cmd.Env = append(os.Environ(), meshdemoArgsEnv+"="+args, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.Contains(line, ready) {
			cmd.Process.Signal(syscall.SIGTERM)
		} else {
			cmd.Process.Kill()
		}
		exited <- cmd.Wait()
	}()
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("meshdemo %s still running 20s after SIGTERM", args)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}
