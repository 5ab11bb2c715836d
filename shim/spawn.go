package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// defaultPath is used when the child's environment has no PATH, as docker
// sets it for images that do not.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// startError is a failure to start the child, with the exit code a shell
// would give for it (127 not found, 126 not executable, 125 our own).
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }

// spawn starts the child in its own process group (so that a group signal or
// a terminal's Ctrl-C reaches it and its descendants, not us), with our
// stdin/stdout/stderr and cwd, and, when we hold the terminal's foreground,
// makes its group the foreground group before it executes.
//
// syscall.ForkExec returns only after the exec succeeded, so the child is in
// its group and owns the terminal before any signal is forwarded to it.
func spawn(args, env []string) (int, error) {
	if len(args) == 0 || args[0] == "" {
		return 0, &startError{ExitOwnFailure, errors.New("no command given: usage is meshinit [flags] -- COMMAND [ARGS...]")}
	}
	path, err := lookPath(args[0], env)
	if err != nil {
		return 0, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if fd, ok := foregroundTerminal(); ok {
		// Ctty is a descriptor in the parent here; the child's TIOCSPGRP
		// runs with all signals blocked, so it is not stopped by SIGTTOU.
		sys.Foreground = true
		sys.Ctty = fd
	}
	inheritUncatchable()
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: stdio(),
		Sys:   sys,
	})
	ignoreUncatchable()
	if err != nil {
		return 0, execError(args[0], path, err)
	}
	return pid, nil
}

// stdio passes fds 0-2 on as they are; a closed one stays closed in the child
// rather than failing the start.
func stdio() []uintptr {
	fds := make([]uintptr, 3)
	for fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			fds[fd] = ^uintptr(0) // -1: close in the child
			continue
		}
		fds[fd] = uintptr(fd)
	}
	return fds
}

// lookPath finds name as execvp would, but in the child's PATH, and
// classifies failures the way shells do.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, name)
	}
	pathVar, ok := envValue(env, "PATH")
	if !ok {
		pathVar = defaultPath
	}
	var firstDenied error
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "." // POSIX: an empty PATH element is the current directory
		}
		candidate := filepath.Join(dir, name)
		err := checkExecutable(name, candidate)
		if err == nil {
			return candidate, nil
		}
		var se *startError
		if errors.As(err, &se) && se.code == ExitNotExecutable && firstDenied == nil {
			firstDenied = err // keep looking, as execvp does, but remember why
		}
	}
	if firstDenied != nil {
		return "", firstDenied
	}
	return "", &startError{ExitCommandMissing, fmt.Errorf("command not found: %q is not in PATH (%s)", name, pathVar)}
}

// checkExecutable says whether path is a file we may execute.
func checkExecutable(name, path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return &startError{ExitCommandMissing, fmt.Errorf("command not found: %s: no such file", path)}
	case err != nil:
		return &startError{ExitNotExecutable, fmt.Errorf("cannot execute %s: %v", name, unwrapPathError(err))}
	case fi.IsDir():
		return &startError{ExitNotExecutable, fmt.Errorf("cannot execute %s: %s is a directory", name, path)}
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return &startError{ExitNotExecutable, fmt.Errorf("cannot execute %s: %s: permission denied (no execute bit for us)", name, path)}
	}
	return nil
}

// execError classifies an error from execve itself, after lookPath found an
// executable file.
func execError(name, path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		// The file exists, so what is missing is its interpreter (#!) or
		// its dynamic loader; shells report this as 126 too.
		return &startError{ExitNotExecutable, fmt.Errorf("cannot execute %s: %s: its interpreter or dynamic loader is missing", name, path)}
	case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOMEM):
		return &startError{ExitOwnFailure, fmt.Errorf("cannot start %s: fork: %v", name, err)}
	default:
		return &startError{ExitNotExecutable, fmt.Errorf("cannot execute %s: %s: %v", name, path, err)}
	}
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// envValue returns the last value of key in env, as getenv would see it.
func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
