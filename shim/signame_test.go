package shim

import (
	"strings"
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	good := map[string]syscall.Signal{
		"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, " TERM ": syscall.SIGTERM, "15": syscall.SIGTERM,
		"SIGQUIT": syscall.SIGQUIT, "sigkill": syscall.SIGKILL, "IOT": syscall.SIGABRT, "SIGPOLL": syscall.SIGIO,
		"SIGRTMIN": 34, "RTMIN+3": 37, "SIGRTMAX": 64, "SIGRTMAX-2": 62, "64": 64, "1": syscall.SIGHUP,
	}
	for in, want := range good {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGNOPE", "RTMIN+31", "RTMIN-1", "RTMAX+1", "RTMIN++3", "RTMIN+", "SIG", "1e1"} {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", in, got)
		}
	}
}

func TestSignalNameRoundTrip(t *testing.T) {
	for n := syscall.Signal(1); n <= 64; n++ {
		if n == 32 || n == 33 {
			continue // no name: C library internals
		}
		name := SignalName(n)
		back, err := ParseSignal(name)
		if err != nil || back != n {
			t.Errorf("signal %d: name %q parses back as %v, %v", n, name, back, err)
		}
	}
}

// FuzzParseSignal: any input yields a signal in 1..64 or an error, never a
// panic, and a parsed signal's name parses back to it.
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"TERM", "SIGRTMIN+3", "RTMAX-0", "15", "", "sig", "RTMIN+99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err != nil {
			return
		}
		if sig < 1 || sig > 64 {
			t.Fatalf("ParseSignal(%q) = %d, out of range", s, sig)
		}
		if sig == 32 || sig == 33 {
			return
		}
		if back, err := ParseSignal(SignalName(sig)); err != nil || back != sig {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, sig, SignalName(sig), back, err)
		}
	})
}

func TestForwardableSet(t *testing.T) {
	got := map[syscall.Signal]bool{}
	for _, s := range Forwardable() {
		if got[s] {
			t.Errorf("%s listed twice", SignalName(s))
		}
		got[s] = true
	}
	// Exactly every signal 1..64 except the ones Run cannot or must not
	// forward.
	notForwarded := map[syscall.Signal]bool{syscall.SIGKILL: true, syscall.SIGSTOP: true, syscall.SIGCHLD: true,
		syscall.SIGPIPE: true, syscall.SIGURG: true, syscall.SIGPROF: true, 32: true, 33: true, 34: true}
	for n := syscall.Signal(1); n <= 64; n++ {
		if got[n] == notForwarded[n] {
			t.Errorf("%s: forwarded=%v, want %v", SignalName(n), got[n], !notForwarded[n])
		}
	}
	if len(got) != 64-len(notForwarded) {
		t.Errorf("%d signals forwarded, want %d", len(got), 64-len(notForwarded))
	}
	for _, s := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGURG, syscall.SIGPROF, syscall.SIGKILL, syscall.SIGSTOP, 32, 33, 34} {
		if got[s] {
			t.Errorf("%s must not be forwarded", SignalName(s))
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGSEGV,
		syscall.SIGILL, syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGTRAP, syscall.SIGSYS,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGWINCH, syscall.SIGUSR1, 35, 64} {
		if !got[s] {
			t.Errorf("%s must be forwarded", SignalName(s))
		}
	}
}

// TestCheckStopSignal: exactly the signals Run can receive and forward are
// accepted as a stop signal; the refusal names the allowed set.
func TestCheckStopSignal(t *testing.T) {
	refused := map[syscall.Signal]bool{
		syscall.SIGKILL: true, syscall.SIGSTOP: true, syscall.SIGCHLD: true, syscall.SIGPIPE: true,
		syscall.SIGURG: true, syscall.SIGPROF: true, 32: true, 33: true, 34: true,
		0: true, 65: true,
	}
	for sig := syscall.Signal(0); sig <= 65; sig++ {
		err := CheckStopSignal(sig)
		if refused[sig] {
			if err == nil {
				t.Errorf("%s accepted as a stop signal", SignalName(sig))
			} else if !strings.Contains(err.Error(), StopSignalSet) {
				t.Errorf("%s refused without naming the allowed set: %v", SignalName(sig), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s refused: %v", SignalName(sig), err)
		}
	}
}
