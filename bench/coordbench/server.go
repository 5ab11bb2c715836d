package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/meshapi"
)

// server is a meshcoord process on a fresh database in a temp dir.
type server struct {
	cmd   *exec.Cmd
	dir   string
	url   string
	admin *adminclient.Client
	log   bytes.Buffer
}

func startServer(bin string, extra ...string) (*server, error) {
	dir, err := os.MkdirTemp("", "coordbench-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir}
	addr := filepath.Join(dir, "addr")
	sock := filepath.Join(dir, "admin.sock")
	s.cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "bench.db"),
		"--admin-socket", sock, "--addr-file", addr, "--log-level", "warn",
		"--ephemeral-timeout", "10m", "--reconnect-grace", "2s", "--keepalive", "15s")
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if f := os.Getenv("COORDBENCH_SERVER_LOG"); f != "" { // for debugging the bench
		if out, err := os.Create(f); err == nil {
			s.cmd.Stdout, s.cmd.Stderr = out, out
		}
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(addr)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			s.url = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("meshcoord did not start: %s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for the file, bounded by the deadline
	}
	s.admin = adminclient.NewSocket(sock)
	return s, nil
}

func (s *server) createKey() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := s.admin.CreateKey(ctx, meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true, Description: "coordbench"})
	if err != nil {
		return "", err
	}
	return k.Key, nil
}

func (s *server) stop() {
	s.shutdown()
	os.RemoveAll(s.dir)
}

// shutdown stops the server (SIGTERM) and waits for it, keeping its files.
func (s *server) shutdown() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
}

// cpuTime returns the CPU time (user + system) a process used so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

// rss returns a process's resident and peak resident memory in MiB.
func rss(pid int) (now, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			now = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return now, peak
}
