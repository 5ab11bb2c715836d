package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// jobshell is the smallest shell that needs working job control, the way an
// interactive bash under "docker run -it" does: it must own the terminal's
// foreground (else bash says "no job control in this shell"), hand it to a
// job, get it back when the job stops (^Z), continue it (fg) and see ^C kill
// it. Commands, one per line on stdin:
//
//	run      start "testapp sleep" as a foreground job and wait for it
//	fg       continue the stopped job in the foreground and wait for it
//	exit N   exit with N
func jobshell() int {
	// Like a shell: ^C and ^Z are for the job, not for us. Caught (not
	// ignored) so the job starts with default dispositions. SIGTTOU must be
	// ignored to take the terminal back from a stopped job.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTSTP, syscall.SIGTTIN)
	go func() {
		for range sigs {
		}
	}()
	signal.Ignore(syscall.SIGTTOU)

	self := syscall.Getpgrp()
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("jobshell ready fg=%v pgrp=%d tpgrp=%d err=%v\n", err == nil && fg == self, self, fg, err)

	var job *os.Process
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "run":
			c := exec.Command("/proc/self/exe", "sleep")
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
			if err := c.Start(); err != nil {
				fmt.Printf("jobshell: run: %v\n", err)
				continue
			}
			job = c.Process
			job = waitJob(job, self)
		case "fg":
			if job == nil {
				fmt.Println("jobshell: fg: no job")
				continue
			}
			if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, job.Pid); err != nil {
				fmt.Printf("jobshell: fg: tcsetpgrp: %v\n", err)
				continue
			}
			_ = syscall.Kill(-job.Pid, syscall.SIGCONT)
			fmt.Println("jobshell: job continued")
			job = waitJob(job, self)
		case "exit":
			code := 0
			if len(cmd) > 1 {
				code, _ = strconv.Atoi(cmd[1])
			}
			return code
		default:
			fmt.Printf("jobshell: unknown command %q\n", cmd[0])
		}
	}
	return 0
}

// waitJob waits until the job stops or ends, takes the terminal back and
// reports which. It returns the job while it can still be continued.
func waitJob(job *os.Process, self int) *os.Process {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(job.Pid, &ws, syscall.WUNTRACED, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Printf("jobshell: wait: %v\n", err)
			return nil
		}
		break
	}
	if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, self); err != nil {
		fmt.Printf("jobshell: taking the terminal back: %v\n", err)
	}
	switch {
	case ws.Stopped():
		fmt.Printf("jobshell: job stopped by %s\n", unix.SignalName(ws.StopSignal()))
		return job
	case ws.Signaled():
		fmt.Printf("jobshell: job killed by %s\n", unix.SignalName(ws.Signal()))
	default:
		fmt.Printf("jobshell: job exited %d\n", ws.ExitStatus())
	}
	return nil
}
