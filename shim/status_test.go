package shim

import (
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	// Linux wait status encoding: exit code in bits 8-15; signal in 0-6.
	cases := map[syscall.WaitStatus]int{
		0:         0,
		3 << 8:    3,
		255 << 8:  255,
		9:         128 + 9,
		15:        143,
		11 | 0x80: 139, // core dumped: still 128+SIGSEGV
		64:        192,
	}
	for ws, want := range cases {
		if got := exitCode(ws); got != want {
			t.Errorf("exitCode(%#x) = %d, want %d", uint32(ws), got, want)
		}
	}
}
