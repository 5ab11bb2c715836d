// Command sigchild is the child the pid1 suite runs under meshinit: it
// reports every signal it receives, one line each, so a test can see exactly
// what meshinit forwarded.
//
// Output lines (stdout, one write each, so lines of several processes on one
// pipe never interleave):
//
//	ready pid=<pid> pgid=<pgid> ppid=<ppid>   handlers installed
//	pid=<pid> got=<signal number>             one per signal received
//
// Flags: -exit-on N dies of signal N after reporting it (so meshinit's exit
// code is 128+N); -spawn K starts K copies of itself in its process group
// (the grandchildren) before saying ready; -lifetime bounds how long it may
// live, so a test failure never leaves it behind.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	exitOn := flag.Int("exit-on", 0, "die of this signal after reporting it")
	spawn := flag.Int("spawn", 0, "grandchildren to start in our process group")
	lifetime := flag.Duration("lifetime", time.Minute, "exit with 99 after this long")
	flag.Parse()

	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, catchable(*spawn == 0)...)

	var kids []*exec.Cmd
	for range *spawn {
		kid := exec.Command(os.Args[0], "-lifetime", lifetime.String(), "-exit-on", fmt.Sprint(*exitOn))
		kid.Stdout = os.Stdout
		kid.Stderr = os.Stderr
		if err := kid.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "sigchild: spawn:", err)
			os.Exit(98)
		}
		kids = append(kids, kid)
	}
	// Grandchildren say ready themselves; the test counts the lines.
	say("ready pid=%d pgid=%d ppid=%d", os.Getpid(), syscall.Getpgrp(), os.Getppid())

	limit := time.After(*lifetime)
	for {
		select {
		case s := <-sigs:
			n := s.(syscall.Signal)
			say("pid=%d got=%d", os.Getpid(), int(n))
			if int(n) == *exitOn {
				signal.Reset(n)
				_ = syscall.Kill(os.Getpid(), n)
				select {} // the signal's default action ends us
			}
		case <-limit:
			say("pid=%d lifetime over", os.Getpid())
			os.Exit(99)
		}
	}
}

// catchable is every signal a process may catch except SIGURG (the Go
// runtime sends it to itself) and, when we have children of our own,
// SIGCHLD.
func catchable(withChld bool) []os.Signal {
	var out []os.Signal
	for n := syscall.Signal(1); n <= 64; n++ {
		switch {
		case n == syscall.SIGKILL, n == syscall.SIGSTOP, n == syscall.SIGURG, n == 32, n == 33:
			continue
		case n == syscall.SIGCHLD && !withChld:
			continue
		}
		out = append(out, n)
	}
	return out
}

func say(format string, args ...any) {
	_, _ = os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
}
