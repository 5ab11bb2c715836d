package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenAdminSocket: the socket is created 0600; a live socket (another
// server) is refused; the socket file a dead server left behind is
// replaced; a path too long for a unix socket is a usage error.
func TestListenAdminSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := listenAdminSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("admin socket %v (%v), want a socket with mode 0600", fi.Mode(), err)
	}

	if _, err := listenAdminSocket(path); err == nil || !strings.Contains(err.Error(), "in use by another meshcoord") {
		t.Fatalf("second listener on a live socket: %v", err)
	}

	// A server killed with -9 leaves its socket file: nothing listens on it.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket file is not there for the test: %v", err)
	}
	ln, err = listenAdminSocket(path)
	if err != nil {
		t.Fatalf("a stale socket file was not replaced: %v", err)
	}
	ln.Close()

	var ue usageError
	if _, err := listenAdminSocket(filepath.Join(t.TempDir(), strings.Repeat("x", 120))); !errors.As(err, &ue) {
		t.Fatalf("over-long socket path: %v, want a usage error", err)
	}
}
