package shim

import (
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// TerminalSafe returns a writer for meshinit's own log lines on f (stderr).
//
// Once the child owns the terminal's foreground, meshinit is a background
// process on it. If the terminal has TOSTOP set (`stty tostop`), the kernel
// answers a background write with SIGTTOU and a restart of the write; since
// meshinit catches SIGTTOU (to forward it), that would loop forever and hang
// the logger. tini avoids this by blocking all signals. Go cannot block a
// signal process-wide, but the kernel looks only at the writing thread's
// mask: so when f is a terminal, writes are made from one dedicated OS thread
// that blocks SIGTTOU and SIGTTIN. A kill-sent SIGTTOU still reaches the Go
// runtime on another thread and is forwarded as usual.
//
// When f is not a terminal, f itself is returned.
func TerminalSafe(f *os.File) io.Writer {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return f
	}
	return &termWriter{fd: int(f.Fd())}
}

type termWriter struct {
	fd   int
	once sync.Once
	reqs chan termWrite
}

type termWrite struct {
	p    []byte
	done chan termWriteResult
}

type termWriteResult struct {
	n   int
	err error
}

// Write hands p to the writer thread and waits, so lines keep their order and
// callers may reuse p afterwards.
func (w *termWriter) Write(p []byte) (int, error) {
	w.once.Do(w.startThread)
	done := make(chan termWriteResult, 1)
	w.reqs <- termWrite{p: p, done: done}
	r := <-done
	return r.n, r.err
}

// startThread starts the writer goroutine, locked to its own thread for the
// life of the process (it never unlocks, so the thread is never reused with
// the altered mask).
func (w *termWriter) startThread() {
	w.reqs = make(chan termWrite)
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		var set unix.Sigset_t
		for _, sig := range []syscall.Signal{syscall.SIGTTOU, syscall.SIGTTIN} {
			set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
		}
		// If blocking fails we still write; the worst case is the
		// behaviour without this writer.
		_ = unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
		close(ready)
		for req := range w.reqs {
			req.done <- writeAll(w.fd, req.p)
		}
	}()
	<-ready
}

// writeAll writes p with raw syscalls on the calling (locked) thread.
func writeAll(fd int, p []byte) termWriteResult {
	var total int
	for total < len(p) {
		n, err := unix.Write(fd, p[total:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN { // a non-blocking terminal: wait until writable
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1)
			continue
		}
		if err != nil {
			return termWriteResult{total, err}
		}
		total += n
	}
	return termWriteResult{total, nil}
}
