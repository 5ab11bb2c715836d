package containerd_test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Plain init (no MESH_AUTHKEY) under containerd: meshinit as the task's
// init process, exit statuses and signals as the runtime sees them. These
// also prove the harness (import, snapshot, task, cleanup) before the mesh.

func TestPlainMeshinitIsPID1(t *testing.T) {
	ctx := suite(t)
	b := startBox(ctx, t, "plain-pid1", spec{args: []string{"sleep"}})
	out := b.waitOutput("testapp ready", 30*time.Second)
	nspid, exe, err := b.hostPID1Facts()
	if err != nil {
		t.Fatal(err)
	}
	if nspid != 1 || !strings.HasSuffix(exe, "/meshinit") {
		t.Errorf("task init: pid %d in its namespace, exe %q; want PID 1 running /meshinit", nspid, exe)
	}
	if !strings.Contains(out, "pid1=/meshinit") || !strings.Contains(out, "ppid=1 ") {
		t.Errorf("the app does not see meshinit as PID 1 and its parent:\n%s", out)
	}
	b.kill(ctx, syscall.SIGTERM)
	if code, _ := b.wait(30 * time.Second); code != 128+15 {
		t.Errorf("app died of SIGTERM: exit %d, want 143", code)
	}
}

func TestPlainExitStatusIsTheApps(t *testing.T) {
	ctx := suite(t)
	b := startBox(ctx, t, "plain-exit", spec{args: []string{"exit", "7"}})
	if code, _ := b.wait(30 * time.Second); code != 7 {
		t.Errorf("exit status %d, want the app's 7; output:\n%s", code, b.out)
	}
}

func TestPlainSIGTERMGivesTheAppsStatus(t *testing.T) {
	ctx := suite(t)
	b := startBox(ctx, t, "plain-term", spec{args: []string{"sleep", "-term", "exit:42"}})
	b.waitOutput("testapp ready", 30*time.Second)
	b.kill(ctx, syscall.SIGUSR1)
	b.waitOutput("testapp got SIGUSR1", 10*time.Second)
	b.kill(ctx, syscall.SIGTERM)
	if code, _ := b.wait(30 * time.Second); code != 42 {
		t.Errorf("exit status %d, want the app's 42; output:\n%s", code, b.out)
	}
}

func TestPlainSIGKILL(t *testing.T) {
	ctx := suite(t)
	b := startBox(ctx, t, "plain-kill", spec{args: []string{"sleep", "-term", "ignore"}})
	b.waitOutput("testapp ready", 30*time.Second)
	b.kill(ctx, syscall.SIGKILL)
	if code, _ := b.wait(30 * time.Second); code != 128+9 {
		t.Errorf("exit status %d, want 137", code)
	}
}
