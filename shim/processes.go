package shim

import "syscall"

// processes is everything the supervision loop does to processes. Run
// uses the real ones (osProcesses); the timing tests drive the same loop
// in a testing/synctest bubble with a simulated child, so the stop budget's
// deadlines are checked exactly, in fake time.
type processes interface {
	// spawn starts the child in its own process group.
	spawn(args, env []string) (pid int, err error)
	// reapAll collects every exit status available now, without blocking.
	reapAll() []reaped
	// signal delivers sig to the child, or to its group when group is set.
	signal(pid int, sig syscall.Signal, group bool) error
	// killAll sends SIGKILL to the child's process group and the child.
	killAll(pid int)
}

// osProcesses are the real processes of the system.
type osProcesses struct{}

func (osProcesses) spawn(args, env []string) (int, error) { return spawn(args, env) }
func (osProcesses) reapAll() []reaped                     { return reapAll() }
func (osProcesses) signal(pid int, sig syscall.Signal, group bool) error {
	return sendTo(pid, sig, group)
}

func (osProcesses) killAll(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
