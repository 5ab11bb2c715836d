package docker_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/syncbuf"
)

// terminal runs a command on a fresh pseudo-terminal, as its controlling
// terminal, the way a person runs "docker run -it" in a shell.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	done   chan struct{}   // closed when cmd exited
	out    *syncbuf.Buffer // everything the terminal showed
	seen   int             // offset up to which expect has matched
}

func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func startTerminal(t *testing.T, cmd *exec.Cmd) *terminal {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 100}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	slave.Close() // the child holds it; reads on master end with EIO when it exits
	term := &terminal{t: t, master: master, cmd: cmd, done: make(chan struct{}), out: &syncbuf.Buffer{}}
	go func() { _, _ = io.Copy(term.out, master) }() // ends with EIO when the command exits
	go func() {
		_ = cmd.Wait()
		close(term.done)
	}()
	t.Cleanup(func() {
		select {
		case <-term.done:
		default:
			_ = cmd.Process.Kill()
			<-term.done
		}
		master.Close()
	})
	return term
}

// send types s on the terminal.
func (term *terminal) send(s string) {
	term.t.Helper()
	if _, err := term.master.Write([]byte(s)); err != nil {
		term.t.Fatalf("typing %q: %v", s, err)
	}
}

// expect waits until want appears in the output after the previous match.
func (term *terminal) expect(want string, timeout time.Duration) {
	term.t.Helper()
	harness.Eventually(term.t, timeout, fmt.Sprintf("terminal shows %q", want), func() (bool, string) {
		out := term.out.String()
		if i := strings.Index(out[term.seen:], want); i >= 0 {
			term.seen += i + len(want)
			return true, ""
		}
		return false, "terminal so far:\n" + out
	})
}

// wait waits for the command to exit and returns its exit code.
func (term *terminal) wait(timeout time.Duration) int {
	term.t.Helper()
	select {
	case <-term.done:
	case <-time.After(timeout):
		term.t.Fatalf("%v still running after %v; terminal:\n%s", term.cmd.Args, timeout, term.out)
	}
	return term.cmd.ProcessState.ExitCode()
}
