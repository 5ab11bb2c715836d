package containerd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/runtimes"
	"github.com/meshinit/meshinit/internal/syncbuf"
)

// box is one container with its running task.
type box struct {
	t     testing.TB
	id    string
	ctr   containerd.Container
	task  containerd.Task
	exit  <-chan containerd.ExitStatus
	out   *syncbuf.Buffer
	netns *runtimes.Netns
}

// spec says what a box runs.
type spec struct {
	// args follow "/meshinit -- /testapp": the testapp mode and its flags.
	args []string
	// env is added to the image's.
	env []string
	// hostname is the container's (and so the mesh node's wish for a name).
	hostname string
	// network gives the box a namespace on the suite's bridge (in
	// 198.18.0.0/15); without it the box has only loopback.
	network bool
}

// cleanupCtx is for work done after a test's context is cancelled.
func cleanupCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), time.Minute)
}

// startBox creates container id from the suite's image and starts its
// task. Everything is removed when the test ends, failed or not.
func startBox(ctx context.Context, t testing.TB, id string, s spec) *box {
	t.Helper()
	b := &box{t: t, id: id, out: &syncbuf.Buffer{}}
	t.Cleanup(b.remove)
	opts := []oci.SpecOpts{
		oci.WithImageConfig(image),
		oci.WithProcessArgs(append([]string{"/meshinit", "--", "/testapp"}, s.args...)...),
		oci.WithEnv(s.env),
		// Under the suite's cgroup parent, which the cleanup removes (the
		// default, /<namespace>/<id>, would leave a directory per namespace).
		oci.WithCgroup(daemon.CgroupParent + "/" + id),
	}
	if s.hostname != "" {
		opts = append(opts, oci.WithHostname(s.hostname))
	}
	if s.network {
		n, err := daemon.NewNetns()
		if err != nil {
			t.Fatal(err)
		}
		b.netns = n
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: n.Path}))
	}
	ctr, err := client.NewContainer(ctx, id,
		// runc's state under the daemon's dir, not /run/containerd/runc
		containerd.WithRuntime("io.containerd.runc.v2", &options.Options{Root: filepath.Join(daemon.Dir, "runc")}),
		containerd.WithNewSnapshot(id+"-rootfs", image),
		containerd.WithNewSpec(opts...))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	b.ctr = ctr
	fifos := filepath.Join(daemon.Dir, "fifo")
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, b.out, b.out), cio.WithFIFODir(fifos)))
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	b.task = task
	// Wait before Start, so a fast exit is never missed. Its context must
	// outlive the test's: the cleanup still waits on it.
	waitCtx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), namespace))
	t.Cleanup(cancel)
	if b.exit, err = task.Wait(waitCtx); err != nil {
		t.Fatalf("task wait %s: %v", id, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("task start %s: %v; output:\n%s", id, err, b.out)
	}
	return b
}

// kill sends sig to the task's init process (meshinit), as the kubelet's
// runtime does on pod deletion.
func (b *box) kill(ctx context.Context, sig syscall.Signal) {
	b.t.Helper()
	if err := b.task.Kill(ctx, sig); err != nil {
		b.t.Fatalf("kill %s %v: %v", b.id, sig, err)
	}
}

// wait returns the task's exit status and time.
func (b *box) wait(timeout time.Duration) (uint32, time.Time) {
	b.t.Helper()
	select {
	case st := <-b.exit:
		code, at, err := st.Result()
		if err != nil {
			b.t.Fatalf("%s exit status: %v", b.id, err)
		}
		// The exit can be reported before the FIFO copiers have read the
		// task's last lines: wait until the shim closed its ends.
		drained := make(chan struct{})
		go func() { b.task.IO().Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			b.t.Fatalf("%s exited but its output was not drained in 10s; so far:\n%s", b.id, b.out)
		}
		return code, at
	case <-time.After(timeout):
		b.t.Fatalf("%s still running after %v; output:\n%s", b.id, timeout, b.out)
	}
	return 0, time.Time{}
}

// waitOutput waits until the task's output contains want.
func (b *box) waitOutput(want string, timeout time.Duration) string {
	b.t.Helper()
	var out string
	harness.Eventually(b.t, timeout, fmt.Sprintf("%s output %q", b.id, want), func() (bool, string) {
		out = b.out.String()
		return strings.Contains(out, want), out
	})
	return out
}

// remove deletes the task (killing it if it runs), the container with its
// snapshot, and the box's network namespace.
func (b *box) remove() {
	if b.t.Failed() && b.ctr != nil {
		b.t.Logf("%s output:\n%s", b.id, b.out)
	}
	ctx, cancel := cleanupCtx()
	defer cancel()
	if b.task != nil {
		if _, err := b.task.Delete(ctx, containerd.WithProcessKill); err != nil {
			b.t.Errorf("delete task %s: %v", b.id, err)
		}
	}
	if b.ctr != nil {
		if err := b.ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			b.t.Errorf("delete container %s: %v", b.id, err)
		}
	}
	if b.netns != nil {
		if err := b.netns.Delete(); err != nil {
			b.t.Errorf("%v", err)
		}
	}
	b.task, b.ctr, b.netns = nil, nil, nil
}

// hostPID1Facts reads, from the host, what the task's init process is:
// its pid inside its own PID namespace and its executable.
func (b *box) hostPID1Facts() (nspid int, exe string, err error) {
	pid := b.task.Pid()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, "", err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			nspid, err = strconv.Atoi(f[len(f)-1])
			if err != nil {
				return 0, "", err
			}
		}
	}
	exe, err = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return nspid, exe, err
}
