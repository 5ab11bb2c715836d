package coordinator_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// TestStderrNobodyReadsKeepsServing runs meshcoord serve with its stderr a
// pipe that nobody reads (a small one, so it fills at once). Its log lines
// fill the pipe and every later write would block; registrations, streams
// and logouts must still succeed, because the server never waits for its
// log (lines beyond its queue are dropped).
func TestStderrNobodyReadsKeepsServing(t *testing.T) {
	harness.Integration(t)
	bin := harness.Binary(t, "meshcoord")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const pipeSize = 4096
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pipeSize); err != nil {
		t.Fatalf("shrinking the pipe: %v", err)
	}
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "mc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	addrFile, sock := filepath.Join(dir, "addr"), filepath.Join(sockDir, "admin.sock")
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "coord.db"),
		"--admin-socket", sock, "--addr-file", addrFile, "--log-level", "debug")
	cmd.Stderr, cmd.Stdout = w, w // an *os.File: the child writes to the pipe itself
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the child holds the only write end
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	var url string
	harness.Eventually(t, 20*time.Second, "meshcoord writes its address", func() (bool, string) {
		b, err := os.ReadFile(addrFile)
		url = strings.TrimSpace(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n"), "no address file yet"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := adminclient.NewSocket(sock).CreateKey(ctx, meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}

	// 8 clients, 400 joins (a log line each), every tenth with a stream
	// and a logout (three more lines). Each call must answer promptly.
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n, err := tryRegister(t, url, k.Key, "web")
				if err != nil {
					t.Error(err)
					return
				}
				if i%10 == c%10 {
					if err := n.tryConnect(30 * time.Second); err != nil {
						t.Error(err)
						return
					}
					if status, err := n.tryLogout(); status != 200 {
						t.Errorf("logout: HTTP %d, %v", status, err)
					}
					n.drop()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the server stalled behind its stderr")
	}
	// The pipe is full: nobody read it, and the server wrote on. (TIOCINQ
	// is FIONREAD: the bytes waiting to be read.)
	if n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ); err != nil || n < pipeSize-512 {
		t.Fatalf("%d bytes wait in the pipe (%v): it never filled, so nothing was tested", n, err)
	}
}
