package shim

import "golang.org/x/sys/unix"

// becomeSubreaper asks the kernel to reparent orphaned descendants to us
// rather than to PID 1 of the namespace, so that we can reap them when we are
// not PID 1 ourselves (for example under `docker run --init=false` with
// another init, or started from a shell).
var becomeSubreaper = func() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
