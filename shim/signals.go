package shim

import (
	"os"
	"syscall"

	"github.com/meshinit/meshinit/shim/internal/sigcatch"
)

// Forwardable returns the signals Run passes on to the child: every
// catchable signal except SIGCHLD, SIGPIPE, SIGURG and SIGPROF
// (docs/shim.md says why).
func Forwardable() []syscall.Signal {
	fwd := sigcatch.Forwardable()
	out := make([]syscall.Signal, len(fwd))
	for i, s := range fwd {
		out[i] = s.(syscall.Signal)
	}
	return out
}

// signalInbox is where the kernel's signals reach the supervision loop
// (sigcatch.Inbox says why it has two channels).
type signalInbox struct {
	chld    chan os.Signal
	forward chan os.Signal
}

// catchSignals installs the handlers, or waits for an installation that
// shim/earlysignals started before main. It must return before the child
// starts so that nothing sent during start-up is lost or kills us. The
// handlers are process-wide and installed once: a second Run in the same
// process (tests) shares them.
func catchSignals() *signalInbox {
	in := sigcatch.Wait()
	ignoreUncatchable()
	return &signalInbox{chld: in.Chld, forward: in.Forward}
}

// sendTo delivers sig to the child, or to its process group when group is
// set. If the group no longer exists (the child moved itself into another
// group or session), the child alone still gets the signal.
func sendTo(pid int, sig syscall.Signal, group bool) error {
	if group {
		err := syscall.Kill(-pid, sig)
		if err != syscall.ESRCH {
			return err
		}
	}
	return syscall.Kill(pid, sig)
}
