// Package sigcatch installs shim.Run's signal handlers, once per process.
//
// It is a package of its own, importing little more than os/signal, so that
// the installation can start while a program's other packages are still
// initialising (shim/earlysignals): enabling each of the 57 signals is a
// round trip to the Go runtime's signal-mask thread, about 1 ms of
// meshinit's start-up, and package initialisation is the longest stretch
// before main that does not need the handlers.
package sigcatch

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Inbox is where the kernel's signals reach shim.Run's supervision loop.
// SIGCHLD has its own channel of capacity one: its only meaning is "call
// wait4 until it says no more", so coalescing is exact. Forwarded signals get
// a deep buffer because os/signal drops what does not fit.
type Inbox struct {
	Chld    chan os.Signal
	Forward chan os.Signal
}

var (
	once      sync.Once
	inbox     *Inbox
	installed chan struct{} // closed once every handler is installed
)

// Start begins installing the handlers in a new goroutine and returns at
// once. Only the first call of Start or Wait does anything.
func Start() {
	once.Do(func() {
		prepare()
		go install()
	})
}

// Wait returns the inbox once every handler is installed, installing them
// now if Start was not called. From then on no forwardable signal and no
// SIGCHLD is lost or kills the process; signals that arrived after their own
// handler was installed are already queued.
func Wait() *Inbox {
	once.Do(func() {
		prepare()
		install()
	})
	<-installed
	return inbox
}

// ownPipe receives SIGPIPE, and nobody reads it. With a handler installed,
// the Go runtime turns a SIGPIPE raised by a write of meshinit's own (a
// relay or coordinator connection, a proxied client, a log line on a
// broken stderr) into an EPIPE error of that write, so meshinit neither
// dies of it nor passes it on (Forwardable says why it must not). os/signal
// drops what does not fit in the channel.
var ownPipe chan os.Signal

func prepare() {
	inbox = &Inbox{Chld: make(chan os.Signal, 1), Forward: make(chan os.Signal, 256)}
	ownPipe = make(chan os.Signal, 1)
	installed = make(chan struct{})
}

// install enables the signals one by one (a round trip each). The ones a
// container is most likely to get while meshinit starts come first, so that
// the window in which they would still kill it is shortest: SIGTERM (docker
// stop), SIGINT (Ctrl-C), SIGHUP, SIGQUIT. SIGCHLD comes last: it means
// nothing before the child exists. Notify skips signals already enabled.
//
// A signal the process was started with ignored stays ignored, as under
// tini: it is never delivered, so there is nothing to forward, and the
// child inherits the ignore as it would without an init (nohup's SIGHUP).
// The Go runtime can tell only for SIGHUP and SIGINT (it installs its own
// handler over any other inherited SIG_IGN); container runtimes start
// PID 1 with every signal at its default.
func install() {
	signal.Notify(inbox.Forward, notIgnored(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)...)
	signal.Notify(ownPipe, syscall.SIGPIPE)
	signal.Notify(inbox.Forward, notIgnored(Forwardable()...)...)
	signal.Notify(inbox.Chld, syscall.SIGCHLD)
	close(installed)
}

// notIgnored drops the signals that are ignored now, before any Notify.
func notIgnored(sigs ...os.Signal) []os.Signal {
	out := sigs[:0:0]
	for _, s := range sigs {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}

// Forwardable lists every signal shim.Run catches and passes on to the
// child: all catchable signals except SIGCHLD (Run's own business: it
// reaps), SIGPIPE (the kernel raises it in meshinit for a write of its own
// to a connection the other end closed: a relay or coordinator connection
// that breaks mid-write, a proxied client that hangs up. Passed on, it
// would kill the app for meshinit's network weather, and a SIGPIPE sent
// by kill(2) cannot be told apart from those through os/signal. Nobody
// sends SIGPIPE to a container; the app still gets its own from its own
// writes), SIGURG (the Go runtime preempts goroutines with it; a forwarded
// SIGURG would be noise to the child) and SIGPROF (the Go runtime's signal
// handler consumes every SIGPROF for its profiler before os/signal sees it,
// so no Go program can forward it; it is the profiling timer, not a signal
// anyone sends to a container).
//
// The fault signals (SEGV, BUS, FPE, ILL, TRAP, ABRT, SYS) are included on
// purpose: with signal.Notify the Go runtime treats a kill-sent fault signal
// as an ordinary asynchronous signal and does not crash, which is what lets
// `docker kill -s SEGV` reach the app (tini dies of them). A real fault inside
// meshinit is synchronous and still panics, as it should.
//
// Realtime signals 35..64 are included; 32, 33 and 34 cannot be caught by a
// Go program (shim/uncatchable.go).
//
// The list is built when asked for, not kept in a package variable: a
// package-level value computed by code would run in every process that links
// shim, before main.
func Forwardable() []os.Signal {
	sigs := make([]os.Signal, 0, 64)
	for n := syscall.Signal(1); n <= 31; n++ {
		switch n {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGURG, syscall.SIGPROF:
			continue
		}
		sigs = append(sigs, n)
	}
	for n := syscall.Signal(35); n <= 64; n++ {
		sigs = append(sigs, n)
	}
	return sigs
}
