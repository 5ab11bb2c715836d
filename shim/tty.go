package shim

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// foregroundTerminal finds the terminal to hand to the child: one of fds
// 0-2 that is our controlling terminal while our process group is its
// foreground group. Only then does the child get the foreground: it must be
// the one that receives Ctrl-C (SIGINT from the terminal goes to the
// foreground group only) and may use job control.
//
// tini looks at stdin only and hands the terminal over whenever stdin is
// one. Looking at stdout and stderr too covers `producer | meshinit -- app`
// on a terminal; checking that we hold the foreground first keeps meshinit
// started in the background of a shell from stealing the terminal from it.
func foregroundTerminal() (fd int, ok bool) {
	pgrp := syscall.Getpgrp()
	for fd := 0; fd <= 2; fd++ {
		// TIOCGPGRP fails with ENOTTY when fd is not a terminal or not our
		// controlling terminal.
		fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		if err == nil && fg == pgrp {
			return fd, true
		}
	}
	return 0, false
}
