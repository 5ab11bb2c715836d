package sigcatch

import (
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
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34:
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
