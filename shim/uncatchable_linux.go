//go:build linux && (amd64 || arm64 || riscv64 || loong64)

package shim

import (
	"syscall"
	"unsafe"
)

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64.
// riscv64 and loong64 have no restorer (mask follows flags), which does not
// matter here: only the handler, first everywhere, is read or set, every
// other field is zero, and the struct is at least as large as the kernel's.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// setDisposition sets SIG_DFL or SIG_IGN with rt_sigaction directly: the Go
// runtime's signal.Ignore refuses signals it reserves. Errors are ignored:
// the worst case is the behaviour without this.
func setDisposition(sig syscall.Signal, handler uintptr) {
	act := kernelSigaction{handler: handler}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}

// disposition is sig's current handler: sigDfl, sigIgn or a handler address.
func disposition(sig syscall.Signal) uintptr {
	var old kernelSigaction
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	if errno != 0 {
		return sigDfl
	}
	return old.handler
}
