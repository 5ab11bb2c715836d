package sigcatch

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestStartThenWaitDeliversSignals starts the installation in the
// background, as shim/earlysignals does, and checks that once Wait returns
// a forwardable signal and SIGCHLD reach their channels instead of killing
// the test process.
func TestStartThenWaitDeliversSignals(t *testing.T) {
	Start()
	Start() // later calls do nothing
	in := Wait()
	if again := Wait(); again != in {
		t.Fatal("Wait returned a second inbox")
	}
	for _, c := range []struct {
		sig syscall.Signal
		ch  chan os.Signal
	}{{syscall.SIGUSR2, in.Forward}, {syscall.SIGTERM, in.Forward}, {syscall.Signal(40), in.Forward}, {syscall.SIGCHLD, in.Chld}} {
		if err := syscall.Kill(os.Getpid(), c.sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-c.ch:
			if got != c.sig {
				t.Fatalf("sent %v, received %v", c.sig, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v never arrived", c.sig)
		}
	}
}

func TestForwardableExcludesOnlyWhatCannotOrMustNotBeForwarded(t *testing.T) {
	got := map[syscall.Signal]bool{}
	for _, s := range Forwardable() {
		got[s.(syscall.Signal)] = true
	}
	for n := syscall.Signal(1); n <= 64; n++ {
		switch n {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34:
			if got[n] {
				t.Errorf("signal %d must not be forwarded", n)
			}
		default:
			if !got[n] {
				t.Errorf("signal %d must be forwarded", n)
			}
		}
	}
}

// A write of the process's own to a pipe whose reader is gone (fd 2 here,
// where an uncaught SIGPIPE would kill a Go program) fails with EPIPE; the
// SIGPIPE it raises, and one sent with kill(2), kill nothing and never
// reach the forwarded channel.
func TestOwnBrokenPipeIsNotForwarded(t *testing.T) {
	in := Wait()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup2(int(w.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	_, werr := syscall.Write(2, []byte("into a pipe nobody reads\n"))
	syscall.Dup2(saved, 2)
	syscall.Close(saved)
	if !errors.Is(werr, syscall.EPIPE) {
		t.Fatalf("write to a broken pipe: %v, want EPIPE", werr)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGPIPE); err != nil {
		t.Fatal(err)
	}
	// A signal sent after them is forwarded; os/signal delivers pending
	// signals lowest number first, so SIGTERM (15) comes after any SIGPIPE
	// (13) that had reached the forwarded channel.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case got := <-in.Forward:
			if got == syscall.SIGPIPE {
				t.Fatal("SIGPIPE reached the forwarded channel")
			}
			if got == syscall.SIGTERM {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SIGTERM never arrived")
		}
	}
}
