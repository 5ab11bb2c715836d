package shim

import "syscall"

// Exit codes of Run besides the child's own.
const (
	ExitOwnFailure     = 125 // meshinit failed before the child started
	ExitNotExecutable  = 126 // the command exists but cannot be executed
	ExitCommandMissing = 127 // the command was not found
)

// exitCode turns a wait status into the code a shell would report: the exit
// code, or 128+N for death by signal N.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	default:
		// Run never asks for stop/continue reports (no WUNTRACED), so this
		// is unreachable; 125 says "meshinit could not tell".
		return ExitOwnFailure
	}
}
