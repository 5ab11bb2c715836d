package shim

import "syscall"

// reaped is one exit status collected by reapAll.
type reaped struct {
	pid    int
	status syscall.WaitStatus
}

// reapAll collects every child that has exited, without blocking. It is the
// only place in the process that calls wait4, and it runs only on the
// supervision loop's goroutine. As PID 1 or a subreaper, orphans of the child
// are our children too, so this is what keeps zombies from piling up.
func reapAll() []reaped {
	var out []reaped
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none exited yet
			return out
		}
		out = append(out, reaped{pid: pid, status: ws})
	}
}
