package shim

import (
	"os/exec"
	"syscall"
	"testing"
)

// TestSendToGroupFallsBackToTheChild: with KillGroup, a child whose pid is
// not (or no longer) a process group id, because it moved itself into
// another group or session, still gets the signal: kill(-pid) fails with
// ESRCH and sendTo signals the pid alone.
func TestSendToGroupFallsBackToTheChild(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep(1)")
	}
	// Started without Setpgid: it stays in the test's group, so no group
	// has its pid as id.
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if err := syscall.Kill(-cmd.Process.Pid, 0); err != syscall.ESRCH {
		t.Fatalf("kill(-%d, 0) = %v, want ESRCH: the set-up needs a pid that is no group id", cmd.Process.Pid, err)
	}
	if err := sendTo(cmd.Process.Pid, syscall.SIGUSR1, true); err != nil {
		t.Fatalf("sendTo with group: %v", err)
	}
	_ = cmd.Wait() // exec's own wait: no Run is reaping in this test
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGUSR1 {
		t.Fatalf("child ended with %v, want death by SIGUSR1", cmd.ProcessState)
	}
}
