package shim

import (
	"os"
	"os/signal"
	"syscall"
)

// forwardable lists every signal Run catches and passes on to the child: all
// catchable signals except SIGCHLD (Run's own business: it reaps), SIGURG
// (the Go runtime preempts goroutines with it; a forwarded SIGURG would be
// noise to the child) and SIGPROF (the Go runtime's signal handler consumes
// every SIGPROF for its profiler before os/signal sees it, so no Go program
// can forward it; it is the profiling timer, not a signal anyone sends to a
// container).
//
// The fault signals (SEGV, BUS, FPE, ILL, TRAP, ABRT, SYS) are included on
// purpose: with signal.Notify the Go runtime treats a kill-sent fault signal
// as an ordinary asynchronous signal and does not crash, which is what lets
// `docker kill -s SEGV` reach the app (tini dies of them). A real fault inside
// meshinit is synchronous and still panics, as it should.
//
// Realtime signals 35..64 are included; 32, 33 and 34 cannot be caught by a
// Go program (uncatchable.go).
var forwardable = func() []os.Signal {
	var sigs []os.Signal
	for n := syscall.Signal(1); n <= 31; n++ {
		switch n {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF:
			continue
		}
		sigs = append(sigs, n)
	}
	for n := syscall.Signal(35); n <= 64; n++ {
		sigs = append(sigs, n)
	}
	return sigs
}()

// Forwardable returns the signals Run passes on to the child.
func Forwardable() []syscall.Signal {
	out := make([]syscall.Signal, len(forwardable))
	for i, s := range forwardable {
		out[i] = s.(syscall.Signal)
	}
	return out
}

// signalInbox is where the kernel's signals reach the supervision loop.
// SIGCHLD has its own channel of capacity one: its only meaning is "call
// wait4 until it says no more", so coalescing is exact. Forwarded signals get a
// deep buffer because os/signal drops what does not fit.
type signalInbox struct {
	chld    chan os.Signal
	forward chan os.Signal
}

// catchSignals installs the handlers. It must run before the child starts so
// that nothing sent during start-up is lost or kills us.
func catchSignals() *signalInbox {
	in := &signalInbox{
		chld:    make(chan os.Signal, 1),
		forward: make(chan os.Signal, 256),
	}
	signal.Notify(in.chld, syscall.SIGCHLD)
	signal.Notify(in.forward, forwardable...)
	ignoreUncatchable()
	return in
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
