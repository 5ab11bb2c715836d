package shim

import (
	"sync"
	"syscall"
)

// uncatchableByGo are signals a process may catch in C but that the Go
// runtime does not let os/signal catch: it reserves 32, 33 and 34 for C
// libraries' threads (glibc SIGCANCEL/SIGSETXID, musl SIGSYNCCALL) and
// installs no handler for 32 and 34. A kill-sent 32 or 34 would therefore
// kill meshinit with its default action and orphan the child (33 is taken by
// the runtime itself and is harmless). meshinit cannot forward them, so it
// ignores them instead: surviving is the part of the contract it can keep.
var uncatchableByGo = []syscall.Signal{32, 34}

// forChild holds, per uncatchable signal, the disposition the child must
// start with: SIG_IGN if meshinit itself was started with it ignored (an
// ignored signal survives execve, so a command started directly would have
// it ignored too), SIG_DFL otherwise. It is read once, before meshinit
// changes anything.
var (
	forChildOnce sync.Once
	forChild     []uintptr
)

func recordInherited() {
	forChild = make([]uintptr, len(uncatchableByGo))
	for i, sig := range uncatchableByGo {
		if disposition(sig) == sigIgn {
			forChild[i] = sigIgn
		}
	}
}

// ignoreUncatchable sets the uncatchable signals to SIG_IGN, after noting
// what they were on the first call.
func ignoreUncatchable() {
	forChildOnce.Do(recordInherited)
	for _, sig := range uncatchableByGo {
		setDisposition(sig, sigIgn)
	}
}

// inheritUncatchable gives the uncatchable signals the dispositions meshinit
// was started with. spawn calls it around fork+exec, so that the child
// starts with the dispositions it would have had without meshinit.
func inheritUncatchable() {
	forChildOnce.Do(recordInherited)
	for i, sig := range uncatchableByGo {
		setDisposition(sig, forChild[i])
	}
}

const (
	sigDfl = 0
	sigIgn = 1
)
