// Package procsecret keeps the secrets meshinit holds out of reach of the
// command it runs, through the channels /proc opens to it.
//
// The command is meshinit's child, usually with the same uid. The kernel
// lets such a process (and root without CAP_SYS_PTRACE, Docker's default)
// read /proc/<meshinit>/environ and, where ptrace rules allow, /proc/<meshinit>/mem
// while meshinit is dumpable: the auth key in the environment, and the
// auth key, node secret and WireGuard private key in memory. Protect makes
// meshinit non-dumpable, which closes environ, mem, maps and the fd
// directory to everyone without CAP_SYS_PTRACE; execve resets it for the
// child. /proc/<meshinit>/cmdline stays world-readable whatever the
// dumpable flag says, and a reader with CAP_SYS_PTRACE still gets environ,
// so Protect also overwrites the secret values in the process's initial
// argument and environment blocks, which is what those two files show.
package procsecret

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// prSetDumpable is prctl's PR_SET_DUMPABLE.
const prSetDumpable = 4

// Protect makes the process non-dumpable and overwrites every value in
// values where it stands whole in the initial argument or environment
// block (an environment entry's value, a whole argument, or an argument's
// part after "="), with '*'. Callers must have copied what they need of
// those values first: Go's os.Args and environment strings share that
// memory, and read stars afterwards.
//
// An error means a part did not work; what did work stays done.
func Protect(values ...string) error {
	// Overwrite first: once non-dumpable, /proc/self/mem belongs to root
	// and a non-root meshinit could no longer open it. No child exists
	// yet, so the order opens no window to the command.
	var errs []error
	if err := scrubInitialBlocks(values); err != nil {
		errs = append(errs, fmt.Errorf("overwriting the secret in /proc/self/environ and cmdline: %w", err))
	}
	if err := setNonDumpable(); err != nil {
		errs = append(errs, fmt.Errorf("making meshinit non-dumpable: %w", err))
	}
	return errors.Join(errs...)
}

func setNonDumpable() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		return e
	}
	return nil
}

// Dumpable reports the process's dumpable flag (tests).
func Dumpable() (bool, error) {
	const prGetDumpable = 3
	r, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prGetDumpable, 0, 0)
	if e != 0 {
		return false, e
	}
	return r != 0, nil
}

// scrubInitialBlocks overwrites the values in [arg_start, env_end) of the
// process's memory, through /proc/self/mem (a process may always write its
// own memory there). The block is the one the kernel laid out at execve;
// /proc/<pid>/cmdline and /proc/<pid>/environ read it.
func scrubInitialBlocks(values []string) error {
	start, end, err := initialBlocks()
	if err != nil {
		return err
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, int64(start)); err != nil {
		return err
	}
	for _, r := range Scrub(block, values) {
		if _, err := mem.WriteAt(block[r[0]:r[1]], int64(start)+int64(r[0])); err != nil {
			return err
		}
	}
	return nil
}

// initialBlocks returns arg_start and env_end from /proc/self/stat
// (fields 48 and 51): argv and the environment are laid out contiguously
// between them.
func initialBlocks() (start, end uint64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its closing ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("unexpected /proc/self/stat format")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	const argStart, envEnd = 48 - 3, 51 - 3
	if len(f) <= envEnd {
		return 0, 0, errors.New("/proc/self/stat has no arg_start/env_end (kernel older than 3.5)")
	}
	if start, err = strconv.ParseUint(f[argStart], 10, 64); err == nil {
		end, err = strconv.ParseUint(f[envEnd], 10, 64)
	}
	if err != nil || end <= start || end-start > 64<<20 {
		return 0, 0, fmt.Errorf("unexpected argument/environment block %d-%d: %v", start, end, err)
	}
	return start, end, nil
}

// Scrub replaces, in a NUL-separated block of "K=V" entries and arguments,
// every whole occurrence of each non-empty value with '*': one preceded by
// the block's start, a NUL or '=', and followed by a NUL or the block's
// end. It returns the changed ranges.
func Scrub(block []byte, values []string) [][2]int {
	var changed [][2]int
	for _, v := range values {
		if v == "" {
			continue
		}
		for from := 0; ; {
			i := bytes.Index(block[from:], []byte(v))
			if i < 0 {
				break
			}
			i += from
			j := i + len(v)
			from = i + 1
			if i > 0 && block[i-1] != 0 && block[i-1] != '=' {
				continue
			}
			if j < len(block) && block[j] != 0 {
				continue
			}
			for k := i; k < j; k++ {
				block[k] = '*'
			}
			changed = append(changed, [2]int{i, j})
		}
	}
	return changed
}
