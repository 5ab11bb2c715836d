package shim

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// signalNames are the Linux names, without the SIG prefix, indexed by
// number. An array of constants is laid out by the linker; a map would be
// built by this package's initialiser at every start of meshinit, whether or
// not a name is ever needed.
var signalNames = [...]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGILL: "ILL",
	syscall.SIGTRAP: "TRAP", syscall.SIGABRT: "ABRT", syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE",
	syscall.SIGKILL: "KILL", syscall.SIGUSR1: "USR1", syscall.SIGSEGV: "SEGV", syscall.SIGUSR2: "USR2",
	syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM", syscall.SIGSTKFLT: "STKFLT",
	syscall.SIGCHLD: "CHLD", syscall.SIGCONT: "CONT", syscall.SIGSTOP: "STOP", syscall.SIGTSTP: "TSTP",
	syscall.SIGTTIN: "TTIN", syscall.SIGTTOU: "TTOU", syscall.SIGURG: "URG", syscall.SIGXCPU: "XCPU",
	syscall.SIGXFSZ: "XFSZ", syscall.SIGVTALRM: "VTALRM", syscall.SIGPROF: "PROF", syscall.SIGWINCH: "WINCH",
	syscall.SIGIO: "IO", syscall.SIGPWR: "PWR", syscall.SIGSYS: "SYS",
}

// alias resolves the other names the kernel headers and docker accept.
func alias(name string) (syscall.Signal, bool) {
	switch name {
	case "IOT":
		return syscall.SIGABRT, true
	case "POLL":
		return syscall.SIGIO, true
	case "CLD":
		return syscall.SIGCHLD, true
	}
	return 0, false
}

const (
	sigRTMin = 34 // first realtime signal available to applications
	sigRTMax = 64
)

// SignalName returns the conventional name of sig ("SIGTERM", "SIGRTMIN+3").
func SignalName(sig syscall.Signal) string {
	if sig > 0 && int(sig) < len(signalNames) && signalNames[sig] != "" {
		return "SIG" + signalNames[sig]
	}
	if sig >= sigRTMin && sig <= sigRTMax {
		if sig == sigRTMin {
			return "SIGRTMIN"
		}
		if sig == sigRTMax {
			return "SIGRTMAX"
		}
		return fmt.Sprintf("SIGRTMIN+%d", int(sig)-sigRTMin)
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// ParseSignal reads a signal as docker's STOPSIGNAL does: a name with or
// without the SIG prefix, in any case ("TERM", "sigterm", "SIGRTMIN+3"), or
// a number ("15"). SIGKILL and SIGSTOP are valid signals, but callers that
// need a stop signal should check with CheckStopSignal.
func ParseSignal(s string) (syscall.Signal, error) {
	in := strings.ToUpper(strings.TrimSpace(s))
	if in == "" {
		return 0, fmt.Errorf("empty signal: give a name like SIGTERM or a number like 15")
	}
	if n, err := strconv.Atoi(in); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, fmt.Errorf("signal number %d out of range: valid numbers are 1..%d", n, sigRTMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(in, "SIG")
	for sig, n := range signalNames {
		if n != "" && n == name {
			return syscall.Signal(sig), nil
		}
	}
	if sig, ok := alias(name); ok {
		return sig, nil
	}
	if sig, ok := parseRealtime(name); ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: give a name like SIGTERM, SIGRTMIN+2 or a number like 15", s)
}

// parseRealtime reads "RTMIN", "RTMIN+n", "RTMAX" and "RTMAX-n".
func parseRealtime(name string) (syscall.Signal, bool) {
	var base, sign int
	var rest string
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		base, sign, rest = sigRTMin, 1, name[len("RTMIN"):]
	case strings.HasPrefix(name, "RTMAX"):
		base, sign, rest = sigRTMax, -1, name[len("RTMAX"):]
	default:
		return 0, false
	}
	if rest == "" {
		return syscall.Signal(base), true
	}
	want := "+"
	if sign < 0 {
		want = "-"
	}
	if !strings.HasPrefix(rest, want) {
		return 0, false
	}
	digits := rest[1:]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	off, err := strconv.Atoi(digits)
	if err != nil || off < 0 || off > sigRTMax-sigRTMin {
		return 0, false
	}
	return syscall.Signal(base + sign*off), true
}

// StopSignalSet describes, for error messages, the signals CheckStopSignal
// accepts: exactly the ones Run catches and forwards (Forwardable).
const StopSignalSet = "1 to 31 except SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE, SIGURG and SIGPROF, " +
	"and the realtime signals 35 to 64 (SIGRTMIN+1 to SIGRTMAX); usually SIGTERM, SIGINT or SIGQUIT"

// CheckStopSignal refuses a stop signal that Run could not both receive
// and forward: one it never sees (SIGKILL, SIGSTOP, SIGPROF, 32-34) would
// never start the stop budget, and one it keeps for itself (SIGCHLD,
// SIGPIPE, SIGURG) would start the budget without reaching the command.
func CheckStopSignal(sig syscall.Signal) error {
	for _, s := range Forwardable() {
		if s == sig {
			return nil
		}
	}
	return fmt.Errorf("%s cannot be a stop signal: meshinit must catch it and forward it to the command; allowed are %s", SignalName(sig), StopSignalSet)
}
