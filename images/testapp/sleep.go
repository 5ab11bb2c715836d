package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sleep blocks until a signal ends it, logging every signal it sees, so the
// suites can check what meshinit forwards and what the app's own exit status
// becomes.
func sleep(args []string) int {
	fs := flag.NewFlagSet("sleep", flag.ContinueOnError)
	term := fs.String("term", "default", "what SIGTERM does: default (die of it), ignore, or exit:N")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	termExit := -1
	switch {
	case *term == "default", *term == "ignore":
	case strings.HasPrefix(*term, "exit:"):
		n, err := strconv.Atoi(strings.TrimPrefix(*term, "exit:"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "testapp sleep: bad -term %q\n", *term)
			return 2
		}
		termExit = n
	default:
		fmt.Fprintf(os.Stderr, "testapp sleep: bad -term %q (default, ignore or exit:N)\n", *term)
		return 2
	}
	sigs := make(chan os.Signal, 16)
	// Every catchable signal except the ones whose default action a job
	// control test relies on (INT, TSTP, TTIN, TTOU, CONT) and SIGCHLD/SIGURG.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE, syscall.SIGALRM)
	fmt.Println("testapp ready")
	for s := range sigs {
		fmt.Printf("testapp got %s\n", unix.SignalName(s.(syscall.Signal)))
		if s != syscall.SIGTERM {
			continue
		}
		switch {
		case *term == "ignore":
		case termExit >= 0:
			return termExit
		default:
			signal.Reset(syscall.SIGTERM)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			select {} // dies of the signal
		}
	}
	return 0
}
