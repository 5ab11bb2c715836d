//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on the database file itself, so
// a second coordinator on the same file fails at once with a clear message
// instead of corrupting state. The kernel drops the lock when the process
// dies, kill -9 included, so a restart never finds a stale lock.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("database %s is in use by another meshcoord: stop it first or pass another --db", path)
		}
		return nil, fmt.Errorf("locking database %s: %w", path, err)
	}
	return f, nil
}
