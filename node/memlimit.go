package node

import (
	"os"
	"runtime/debug"
)

// DefaultMemoryLimit is the soft memory limit meshinit sets when the user
// set no GOMEMLIMIT. A busy netstack tunnel otherwise grows to ≈290 MiB of
// garbage between collections; at 128 MiB it peaks near 85 MiB with little
// extra CPU, while 64 MiB makes the collector thrash (see DEPENDENCIES.md
// and docs/node.md).
const DefaultMemoryLimit = 128 << 20

// SetDefaultMemoryLimit applies DefaultMemoryLimit unless GOMEMLIMIT is set,
// and reports the limit in force.
func SetDefaultMemoryLimit() (limit int64, fromEnv bool) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), true
	}
	debug.SetMemoryLimit(DefaultMemoryLimit)
	return DefaultMemoryLimit, false
}
