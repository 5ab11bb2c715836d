// Package runtimes starts and stops the private container daemons the docker
// and containerd suites run against: a dockerd (with its own containerd) and
// a standalone containerd, each with its own root, exec root, pidfile and
// socket in a temp dir under /tmp.
//
// The flags, the containerd config and the cleanup live in
// scripts/runtimes.sh, the one source of truth a human uses too ("runtimes.sh
// start"). This package asks the script for them and only owns the process
// lifetimes: it starts the daemons itself, tied to the test process
// (Pdeathsig), so a test binary killed by -timeout never leaves a daemon
// running.
package runtimes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// scriptPath is scripts/runtimes.sh of this checkout.
func scriptPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("runtimes: cannot locate source file")
	}
	// integration/internal/runtimes/runtimes.go -> repo root
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	p := filepath.Join(root, "scripts", "runtimes.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("runtimes: %w", err)
	}
	return p, nil
}

// script runs "runtimes.sh args..." and returns its stdout.
func script(args ...string) (string, error) {
	p, err := scriptPath()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", append([]string{p}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("runtimes.sh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Install installs the runtimes from Debian when missing (apt-get); a no-op
// when they are there.
func Install() error {
	_, err := script("install")
	return err
}

// newDir makes the temp dir of one runtime instance. Its name is short: it
// ends up in unix socket paths (108 bytes) and interface names.
func newDir() (string, error) {
	return os.MkdirTemp("/tmp", "mirt-")
}

// daemon is one running daemon process, started so that it dies with us.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan error // receives cmd.Wait's result once
	log  string
}

// startDaemon starts argv with its output in logPath. Pdeathsig is bound to
// the thread that forks, so the fork happens on a goroutine that keeps its
// thread locked for the daemon's whole life.
func startDaemon(name string, argv []string, logPath string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, done: make(chan error, 1), log: logPath}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the daemon
		defer logf.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		d.cmd = cmd
		started <- nil
		d.done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return d, nil
}

// exited reports whether the daemon has exited (without consuming the result
// for stop).
func (d *daemon) exited() (bool, error) {
	select {
	case err := <-d.done:
		d.done <- err
		return true, err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILL.
func (d *daemon) stop(grace time.Duration) error {
	if exited, _ := d.exited(); exited {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return fmt.Errorf("%s did not stop within %v after SIGTERM; killed it", d.name, grace)
}

// tail returns the last lines of the daemon's log, for error messages.
func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready every 50 ms until it succeeds, the daemon dies, or
// timeout passes.
func (d *daemon) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if exited, werr := d.exited(); exited {
			return fmt.Errorf("%s exited during start (%v); log:\n%s", d.name, werr, d.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v; log:\n%s", d.name, timeout, err, d.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup asks the script to remove everything of dir: mounts, network
// namespaces, bridges, cgroups, the dir itself.
func cleanup(dir string) error {
	_, err := script("cleanup", dir)
	return err
}
