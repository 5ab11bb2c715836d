// Package earlysignals, imported for its side effect, starts installing
// shim.Run's signal handlers while the program's other packages are still
// initialising, when the program was started as `PROGRAM -- COMMAND...`:
//
//	import _ "github.com/meshinit/meshinit/shim/earlysignals"
//
// cmd/meshinit imports it. Enabling the 57 signals shim.Run catches costs
// about 1 ms of round trips to the Go runtime's signal-mask thread; started
// here, on another thread, it overlaps with the initialisation of the ~100
// packages that come after this one (urfave/cli, net/http, crypto, gVisor,
// wireguard-go) instead of adding to it. shim.Run then only waits for it to
// finish, so the rule "handlers installed before the child starts" holds as
// before, and a signal that arrives during initialisation is now queued for
// the child too instead of killing the process.
//
// Only argv[1] == "--" triggers it: that is the container form (ENTRYPOINT
// ["meshinit", "--"]), which always goes on to shim.Run. Any other command
// line (flags, verbs such as "status", --help, a test binary's flags) may
// not supervise anything and keeps the default signal behaviour until
// shim.Run installs the handlers itself. With GOMAXPROCS=1 the installation
// simply runs when main first blocks, as without this package.
//
// It imports only what the installation needs, so that it is initialised
// among the first packages.
package earlysignals

import (
	"os"

	"github.com/meshinit/meshinit/shim/internal/sigcatch"
)

func init() {
	if supervises(os.Args) {
		sigcatch.Start()
	}
}

// supervises reports whether args is the container form `PROGRAM -- ...`.
func supervises(args []string) bool {
	return len(args) >= 2 && args[1] == "--"
}
