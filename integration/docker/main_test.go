// Package docker_test runs meshinit images under a real, private dockerd
// with the docker CLI: plain init behaviour (exit codes, signals, PID 1, a
// terminal with job control) and the mesh lifecycle (join before the app,
// talk by name, logout on stop, GC after a kill, names kept across
// restarts). See docs/runtimes.md.
package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/runtimes"
)

// Image tags built by the suite on its private daemon.
const (
	imageMeshinit = "meshinit:test"
	imageTestapp  = "meshinit-testapp:test"
	imageExample  = "meshinit-example:test"
	imageCoord    = "meshcoord:test"
)

var (
	dockerOnce sync.Once
	dockerd    *runtimes.Docker
	dockerErr  error
	started    time.Time
)

func TestMain(m *testing.M) {
	code := m.Run()
	if dockerd != nil {
		if err := dockerd.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "docker suite cleanup:", err)
			if code == 0 {
				code = 1
			}
		}
		fmt.Printf("docker suite: private dockerd up for %v\n", time.Since(started).Round(time.Millisecond))
	}
	harness.Cleanup()
	os.Exit(code)
}

// suite gates the test and returns the private dockerd with the suite's
// images built (once per process).
func suite(t *testing.T) *runtimes.Docker {
	t.Helper()
	harness.Integration(t)
	dockerOnce.Do(func() {
		started = time.Now()
		// stays set if a step below ends the test (t.Fatal) half way
		dockerErr = errors.New("suite setup did not finish (see the first failing test)")
		if err := runtimes.Install(); err != nil {
			dockerErr = err
			return
		}
		dk, err := runtimes.StartDocker()
		if err != nil {
			dockerErr = err
			return
		}
		dockerd = dk
		dockerErr = buildImages(t, dockerd)
	})
	if dockerErr != nil {
		t.Fatalf("private dockerd: %v", dockerErr)
	}
	return dockerd
}

// buildImages builds the suite's images from the real Dockerfiles, with
// contexts laid out as "make image" has them (bin/<binary>).
func buildImages(t *testing.T, dk *runtimes.Docker) error {
	root := harness.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	steps := []struct {
		tag, dockerfile string
		files           map[string]string
	}{
		{imageMeshinit, "Dockerfile", map[string]string{"bin/meshinit": harness.Binary(t, "meshinit")}},
		{imageTestapp, "images/testapp/Dockerfile", map[string]string{"bin/testapp": harness.Program(t, "./images/testapp")}},
		{imageExample, "images/example/Dockerfile", map[string]string{"bin/hello": harness.Program(t, "./images/example/hello")}},
		{imageCoord, "images/meshcoord/Dockerfile", map[string]string{"bin/meshcoord": harness.Binary(t, "meshcoord")}},
	}
	for _, s := range steps {
		if err := dk.Build(ctx, s.tag, filepath.Join(root, s.dockerfile), s.files,
			"MESHINIT_IMAGE="+imageMeshinit, "VERSION=test"); err != nil {
			return err
		}
	}
	return nil
}

// docker runs the CLI and fails t on error, returning trimmed stdout.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := dockerd.Output(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// dockerCode runs the CLI and returns its exit code and combined output.
func dockerCode(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := dockerd.Command(ctx, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("docker %s: timed out", strings.Join(args, " "))
	}
	code := 0
	if err != nil {
		ee, ok := err.(interface{ ExitCode() int })
		if !ok {
			t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, string(out)
}

// container names are unique per test so parallel tests never collide;
// each is removed when the test ends.
func container(t *testing.T, name string) string {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			if out, err := dockerd.Command(ctx, "logs", "--timestamps", name).CombinedOutput(); err == nil {
				t.Logf("docker logs %s:\n%s", name, out)
			}
		}
		_, _ = dockerd.Output(ctx, "rm", "-f", name)
	})
	return name
}

// logs returns the container's combined stdout and stderr.
func logs(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := dockerd.Command(ctx, "logs", name).CombinedOutput()
	if err != nil {
		t.Fatalf("docker logs %s: %v: %s", name, err, out)
	}
	return string(out)
}

// waitLog waits until the container's logs contain want.
func waitLog(t *testing.T, name, want string, timeout time.Duration) string {
	t.Helper()
	var out string
	harness.Eventually(t, timeout, fmt.Sprintf("%s logs %q", name, want), func() (bool, string) {
		out = logs(t, name)
		return strings.Contains(out, want), out
	})
	return out
}

// inspect returns a field of docker inspect (a Go template).
func inspect(t *testing.T, name, format string) string {
	t.Helper()
	return docker(t, "inspect", "--format", format, name)
}
