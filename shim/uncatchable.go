package shim

import "syscall"

// uncatchableByGo are signals a process may catch in C but that the Go
// runtime does not let os/signal catch: it reserves 32, 33 and 34 for C
// libraries' threads (glibc SIGCANCEL/SIGSETXID, musl SIGSYNCCALL) and
// installs no handler for 32 and 34. A kill-sent 32 or 34 would therefore
// kill meshinit with its default action and orphan the child (33 is taken by
// the runtime itself and is harmless). meshinit cannot forward them, so it
// ignores them instead: surviving is the part of the contract it can keep.
var uncatchableByGo = []syscall.Signal{32, 34}

// ignoreUncatchable sets the uncatchable signals to SIG_IGN.
func ignoreUncatchable() { setDisposition(uncatchableByGo, sigIgn) }

// defaultUncatchable restores SIG_DFL. spawn calls it around fork+exec,
// because an ignored disposition survives execve and the child must start
// with the dispositions it would have had without meshinit.
func defaultUncatchable() { setDisposition(uncatchableByGo, sigDfl) }

const (
	sigDfl = 0
	sigIgn = 1
)
