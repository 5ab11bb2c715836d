//go:build !(linux && (amd64 || arm64 || riscv64 || loong64))

package shim

import "syscall"

// setDisposition is a no-op where the kernel's sigaction layout is not
// declared here; signals 32 and 34 then keep their default action.
func setDisposition(syscall.Signal, uintptr) {}

// disposition reports SIG_DFL where it cannot be read.
func disposition(syscall.Signal) uintptr { return sigDfl }
