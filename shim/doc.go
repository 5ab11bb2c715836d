// Package shim is meshinit's PID-1 supervisor: it starts one child, forwards
// signals to it, reaps every zombie and exits with the child's status.
//
// The model is tini's single supervision loop. One goroutine owns
// wait4(-1) and routes every exit status by pid; nothing else in the process
// may wait for children while the child runs (mixing a global reaper with
// exec.Cmd.Wait loses exit statuses, Tailscale #11893). The child is started
// with syscall.ForkExec for that reason, never with os/exec.
//
// On top of a plain init, Run has a stop budget: the first stop signal starts
// a deadline, and the Hooks.BeforeExit hook (the mesh node's logout) runs when
// the child has exited, or at the latest when only Config.LogoutReserve is left
// before the deadline. Run never waits for the hook past the deadline; at the
// deadline a child that is still running is killed, as docker would do.
//
// docs/shim.md describes the behaviour in full and where it differs from tini
// and dumb-init.
package shim
