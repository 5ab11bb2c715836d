package pid1

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal whose controlling side the test holds, with
// everything written to the terminal collected.
type pty struct {
	master *os.File
	slave  *os.File
	out    *syncbuf.Buffer
}

// openPTY opens /dev/ptmx and its slave with the ioctls posix_openpt,
// unlockpt and ptsname would use.
func openPTY(t *testing.T) *pty {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		harness.Missing(t, "/dev/ptmx: "+err.Error())
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &pty{master: master, slave: slave, out: &syncbuf.Buffer{}}
	go func() { _, _ = io.Copy(p.out, master) }() // ends with EIO when the last slave fd closes
	t.Cleanup(func() { master.Close(); slave.Close() })
	return p
}

// setTostop turns on TOSTOP: background writers to the terminal get
// SIGTTOU.
func (p *pty) setTostop(t *testing.T) {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag |= unix.TOSTOP
	if err := unix.IoctlSetTermios(int(p.slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
}

// type_ writes keystrokes to the terminal.
func (p *pty) type_(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func (p *pty) waitOutput(t *testing.T, want string) {
	t.Helper()
	harness.Eventually(t, waitLimit, fmt.Sprintf("terminal shows %q", want), func() (bool, string) {
		out := p.out.String()
		return strings.Contains(out, want), "terminal:\n" + out
	})
}

// startOnTTY runs meshinit on the terminal as a session leader with it as
// controlling terminal, as `docker run -it` does (asPID1: unshare is the
// session leader and meshinit, PID 1 of the namespace, is in its
// foreground process group).
func startOnTTY(t *testing.T, m mode, tty *pty, bin string, args []string, env ...string) *proc {
	t.Helper()
	return startOnTTYStdin(t, m, tty, nil, bin, args, env...)
}

// startOnTTYStdin is startOnTTY with stdin from elsewhere when stdin is not
// nil (`producer | meshinit -- app` typed in a terminal).
func startOnTTYStdin(t *testing.T, m mode, tty *pty, stdin *os.File, bin string, args []string, env ...string) *proc {
	t.Helper()
	argv := append([]string{bin}, args...)
	if m == asPID1 {
		argv = append([]string{harness.LookPath(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"TERM=dumb", "PS1=$ "}, env...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty.slave, tty.slave, tty.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if stdin != nil {
		cmd.Stdin = stdin
		cmd.SysProcAttr.Ctty = 1 // the terminal is stdout
	}
	p := &proc{t: t, mode: m, cmd: cmd, stdout: tty.out, stderr: tty.out, outEOF: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// TestTTYCtrlCEndsForegroundLoop: on a terminal the command gets the
// foreground process group, so Ctrl-C (SIGINT from the terminal to the
// foreground group) ends a busy loop and meshinit exits 130.
func TestTTYCtrlCEndsForegroundLoop(t *testing.T) {
	bin, _ := setup(t)
	// /proc/self/stat fields 5 and 8: process group and the terminal's
	// foreground group. Printed computed, so the echo of typing can never
	// match.
	script := `set -- $(cat /proc/$$/stat); [ "$5" = "$8" ] && echo FG-YES || echo FG-NO; while :; do :; done`
	for _, piped := range []bool{false, true} {
		name := "stdin on the terminal"
		if piped {
			name = "stdin from a pipe, stdout on the terminal"
		}
		t.Run(name, func(t *testing.T) {
			bothModes(t, func(t *testing.T, m mode) {
				tty := openPTY(t)
				var stdin *os.File
				if piped {
					r, w, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					defer w.Close()
					stdin = r
				}
				p := startOnTTYStdin(t, m, tty, stdin, bin, []string{"--", "/bin/sh", "-c", script})
				tty.waitOutput(t, "FG-")
				if !strings.Contains(tty.out.String(), "FG-YES") {
					t.Fatalf("the command is not in the terminal's foreground group:\n%s", tty.out.String())
				}
				tty.type_(t, "\x03") // Ctrl-C
				p.waitCode(130)
			})
		})
	}
}

// TestTTYBashJobControl: an interactive bash under meshinit has job
// control: Ctrl-C interrupts a foreground job ($? = 130), a job that stops
// itself is reported and `fg` resumes it, and `exit 7` makes meshinit exit
// 7.
func TestTTYBashJobControl(t *testing.T) {
	bin, _ := setup(t)
	bash := harness.LookPath(t, "bash")
	bothModes(t, func(t *testing.T, m mode) {
		tty := openPTY(t)
		p := startOnTTY(t, m, tty, bin, []string{"--", bash, "--norc", "--noprofile", "-i"})
		// Arithmetic makes every marker differ from the typed text echoed back.
		tty.type_(t, "case $- in *m*) echo JOBCTL-$((40+2));; *) echo NOJOBCTL-$((40+2));; esac\n")
		tty.waitOutput(t, "JOBCTL-42")
		if strings.Contains(tty.out.String(), "NOJOBCTL-42") || strings.Contains(tty.out.String(), "no job control") {
			t.Fatalf("bash has no job control:\n%s", tty.out.String())
		}
		// Ctrl-C once the foreground job has surely started.
		tty.type_(t, "sh -c 'echo SLEEPING-$((1+1)); exec sleep 1000'\n")
		tty.waitOutput(t, "SLEEPING-2")
		tty.type_(t, "\x03")
		tty.type_(t, "echo RC-$((0+$?))\n")
		tty.waitOutput(t, "RC-130")
		// A job that stops itself; bash reports it; fg resumes it.
		tty.type_(t, "sh -c 'echo STOPPING-$((2+2)); kill -TSTP $$; echo RESUMED-$((3+3))'\n")
		tty.waitOutput(t, "STOPPING-4")
		tty.waitOutput(t, "Stopped")
		tty.type_(t, "fg\n")
		tty.waitOutput(t, "RESUMED-6")
		tty.type_(t, "exit 7\n")
		p.waitCode(7)
	})
}

// TestTTYLoggingWithTostop: with TOSTOP set, a background process that
// writes to the terminal gets SIGTTOU. meshinit is in the background once
// the command owns the terminal; its log lines must neither hang it nor
// be mistaken for signals to forward.
func TestTTYLoggingWithTostop(t *testing.T) {
	bin, child := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		tty := openPTY(t)
		tty.setTostop(t)
		p := startOnTTY(t, m, tty, bin, []string{"--", child, "-exit-on", "15"}, "MESH_LOG_LEVEL=debug")
		tty.waitOutput(t, "ready pid=")
		pid := reportedPids(tty.out.String())[0]
		p.signal(syscall.SIGUSR1) // meshinit logs "forwarded signal" at debug level
		tty.waitOutput(t, fmt.Sprintf("pid=%d got=10", pid))
		tty.waitOutput(t, "signal=SIGUSR1")
		p.signal(syscall.SIGTERM)
		p.waitCode(143)
		if strings.Contains(tty.out.String(), "got=22") {
			t.Fatalf("meshinit forwarded a SIGTTOU its own logging caused:\n%s", tty.out.String())
		}
	})
}

// TestTTYBackgroundDoesNotStealTerminal: meshinit started as a background
// job of an interactive shell does not hand the terminal to its command:
// the shell keeps the foreground (tini would take it).
func TestTTYBackgroundDoesNotStealTerminal(t *testing.T) {
	bin, _ := setup(t)
	bash := harness.LookPath(t, "bash")
	tty := openPTY(t)
	check := `set -- $(cat /proc/$$/stat); [ "$5" = "$8" ] && echo FG-YES || echo FG-NO`
	script := fmt.Sprintf(`%s -- /bin/sh -c '%s' & wait $!; echo "MI-EXIT-$?"`, bin, check)
	p := startOnTTY(t, asChild, tty, bash, []string{"--norc", "--noprofile", "-i", "-c", script})
	tty.waitOutput(t, "MI-EXIT-0")
	if !strings.Contains(tty.out.String(), "FG-NO") {
		t.Fatalf("a background meshinit gave its command the terminal:\n%s", tty.out.String())
	}
	p.waitCode(0)
}
