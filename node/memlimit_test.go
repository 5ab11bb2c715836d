package node

import (
	"runtime/debug"
	"testing"
)

func TestSetDefaultMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	limit, fromEnv := SetDefaultMemoryLimit()
	if fromEnv || limit != DefaultMemoryLimit || debug.SetMemoryLimit(-1) != DefaultMemoryLimit {
		t.Fatalf("without GOMEMLIMIT: limit %d (from env %v), runtime %d; want the default %d",
			limit, fromEnv, debug.SetMemoryLimit(-1), DefaultMemoryLimit)
	}

	// A user's GOMEMLIMIT (applied by the runtime at start) is left alone.
	const mine = 300 << 20
	debug.SetMemoryLimit(mine)
	t.Setenv("GOMEMLIMIT", "300MiB")
	limit, fromEnv = SetDefaultMemoryLimit()
	if !fromEnv || limit != mine || debug.SetMemoryLimit(-1) != mine {
		t.Fatalf("with GOMEMLIMIT set: limit %d (from env %v), runtime %d; want %d kept",
			limit, fromEnv, debug.SetMemoryLimit(-1), mine)
	}
}
