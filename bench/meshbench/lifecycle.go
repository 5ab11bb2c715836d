package main

// The lifecycle half of meshbench: how long a container waits for the mesh
// before its app starts (join), and how long a stopped container lingers in
// the coordinator (deletion). Both against a baseline measured in the same
// run: the same app started without meshinit, and without a key.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/meshapi"
)

// Targets from issue 4; printed, never enforced.
const (
	targetJoin     = 100 * time.Millisecond
	targetDeletion = 50 * time.Millisecond
)

// lifecycleRun is one measured meshinit start and stop.
type lifecycleRun struct {
	join        time.Duration // exec of meshinit → the app's first output line
	meshUp      time.Duration // meshinit's own "mesh up" total (register, map, device)
	signalToDel time.Duration // SIGTERM → deleted event at the coordinator
	exitToDel   time.Duration // the app exited (meshinit's log) → deleted event
	signalToEnd time.Duration // SIGTERM → meshinit exited
	reason      meshapi.DeleteReason
}

// coordProc is a meshcoord serve for the benchmark, on loopback.
type coordProc struct {
	cmd   *exec.Cmd
	url   string
	admin *adminclient.Client
	logs  syncbuf.Buffer // written by exec's copier while startCoordinator reads it

	mu      sync.Mutex
	deleted map[string]meshapi.Event // by node name
	changed chan struct{}
	cancel  context.CancelFunc
}

func startCoordinator(meshcoord, dir string) (*coordProc, error) {
	sock := filepath.Join(dir, "admin.sock")
	addrFile := filepath.Join(dir, "addr")
	c := &coordProc{deleted: map[string]meshapi.Event{}, changed: make(chan struct{}, 1)}
	c.cmd = exec.Command(meshcoord, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "coord.db"),
		"--admin-socket", sock, "--addr-file", addrFile, "--log-level", "warn")
	c.cmd.Stdout, c.cmd.Stderr = &c.logs, &c.logs
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			c.url = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("meshcoord did not start: %s", c.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.admin = adminclient.NewSocket(sock)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.admin.Events(ctx, 0, true, func(e meshapi.Event) error {
		if e.Type == meshapi.EventDeleted {
			c.mu.Lock()
			c.deleted[e.Name] = e
			c.mu.Unlock()
			select {
			case c.changed <- struct{}{}:
			default:
			}
		}
		return nil
	})
	return c, nil
}

// waitDeleted waits for the deleted event of name.
func (c *coordProc) waitDeleted(name string, limit time.Duration) (meshapi.Event, error) {
	timeout := time.After(limit)
	for {
		c.mu.Lock()
		e, ok := c.deleted[name]
		c.mu.Unlock()
		if ok {
			return e, nil
		}
		select {
		case <-c.changed:
		case <-timeout:
			return meshapi.Event{}, fmt.Errorf("node %s not deleted within %v", name, limit)
		}
	}
}

func (c *coordProc) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// startApp starts argv with env and returns when the app printed its first
// line: the moment it is running.
func startApp(argv, env []string) (*exec.Cmd, *bytes.Buffer, time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, 0, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, 0, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	took := time.Since(begin)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, 0, fmt.Errorf("%s printed nothing (%v): %s", argv[0], err, stderr.String())
	}
	_ = line
	go func() {
		// drain the rest so the app never blocks on a full pipe
		buf := make([]byte, 4096)
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	return cmd, &stderr, took, nil
}

// stopApp sends SIGTERM and waits for the exit.
func stopApp(cmd *exec.Cmd) (time.Time, time.Duration) {
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return sent, time.Since(sent)
}

// logTime returns the time of the first JSON log record of meshinit whose
// msg is msg, and the record.
func logTime(stderr []byte, msg string) (time.Time, map[string]any, bool) {
	for _, line := range bytes.Split(stderr, []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != msg {
			continue
		}
		ts, _ := rec["time"].(string)
		t, err := time.Parse(time.RFC3339Nano, ts)
		return t, rec, err == nil
	}
	return time.Time{}, nil, false
}

// benchMesh starts a coordinator in a new temp dir and creates an
// ephemeral, reusable key; done stops it and removes the dir.
func benchMesh(meshcoord, prefix string) (dir string, coord *coordProc, key *meshapi.KeyCreateResponse, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, nil, nil, err
	}
	coord, err = startCoordinator(meshcoord, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, nil, err
	}
	done = func() {
		coord.stop()
		os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, err = coord.admin.CreateKey(ctx, meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true, Description: prefix})
	if err != nil {
		done()
		return "", nil, nil, nil, fmt.Errorf("creating a key: %w", err)
	}
	return dir, coord, key, done, nil
}

// runLifecycle measures join and deletion, runs times each, and prints the
// table.
func runLifecycle(b binaries, runs int) error {
	dir, coord, k, done, err := benchMesh(b.meshcoord, "meshbench-lc-")
	if err != nil {
		return err
	}
	defer done()
	app := []string{b.meshdemo, "hang"}
	baseEnv := []string{"PATH=" + os.Getenv("PATH")}

	var plain, plainInit []time.Duration
	var meshRuns []lifecycleRun
	for i := range runs + 1 { // run 0 warms the page cache and is dropped
		// Baseline 1: the app alone.
		cmd, _, took, err := startApp(app, baseEnv)
		if err != nil {
			return err
		}
		stopApp(cmd)
		// Baseline 2: meshinit without a key (a plain init).
		cmd, _, tookInit, err := startApp(append([]string{b.meshinit, "--"}, app...), baseEnv)
		if err != nil {
			return err
		}
		stopApp(cmd)
		// The real thing.
		name := fmt.Sprintf("bench-%d", i)
		env := append(slices.Clone(baseEnv),
			"MESH_AUTHKEY="+k.Key, "MESH_COORDINATOR="+coord.url, "MESH_HOSTNAME="+name,
			"MESH_PROXY=127.0.0.1:0", "MESH_CONTROL_SOCKET="+filepath.Join(dir, "ctl.sock"),
			"MESH_LOG_FORMAT=json", "MESH_LOG_LEVEL=debug")
		cmd, stderr, join, err := startApp(append([]string{b.meshinit, "--"}, app...), env)
		if err != nil {
			return err
		}
		sent, end := stopApp(cmd)
		ev, err := coord.waitDeleted(name, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%w\nmeshinit log:\n%s", err, stderr)
		}
		r := lifecycleRun{join: join, signalToDel: ev.Time.Sub(sent), signalToEnd: end, reason: ev.Reason}
		if exited, _, ok := logTime(stderr.Bytes(), "command exited"); ok {
			r.exitToDel = ev.Time.Sub(exited)
		}
		if _, rec, ok := logTime(stderr.Bytes(), "mesh up"); ok {
			if s, ok := rec["total"].(string); ok {
				r.meshUp, _ = time.ParseDuration(s)
			}
		}
		if i == 0 {
			continue
		}
		plain = append(plain, took)
		plainInit = append(plainInit, tookInit)
		meshRuns = append(meshRuns, r)
	}

	pick := func(f func(lifecycleRun) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range meshRuns {
			out = append(out, f(r))
		}
		return out
	}
	for _, r := range meshRuns {
		if r.reason != meshapi.ReasonLogout {
			return errors.New("a node was deleted with reason " + string(r.reason) + ", not logout")
		}
	}
	base := median(plain)
	join := median(pick(func(r lifecycleRun) time.Duration { return r.join }))
	fmt.Printf("\nlifecycle: meshinit against meshcoord on loopback (SQLite), median of %d runs\n", runs)
	fmt.Printf("  %-44s %10s  %s\n", "measure", "median", "note")
	row := func(what string, d time.Duration, note string) {
		fmt.Printf("  %-44s %10s  %s\n", what, fmtDur(d), note)
	}
	row("app alone: exec → first output (baseline)", base, "1.00×")
	row("meshinit, no key: exec → app running", median(plainInit), ratio(median(plainInit), base))
	row("join: exec → app running with the mesh up", join, ratio(join, base)+verdict(join, targetJoin))
	row("  of which meshinit's \"mesh up\" (reg+map+dev)", median(pick(func(r lifecycleRun) time.Duration { return r.meshUp })), "")
	del := median(pick(func(r lifecycleRun) time.Duration { return r.exitToDel }))
	row("deletion: app exited → node deleted", del, verdict(del, targetDeletion))
	row("stop signal → node deleted (reason logout)", median(pick(func(r lifecycleRun) time.Duration { return r.signalToDel })), "")
	row("stop signal → meshinit exited", median(pick(func(r lifecycleRun) time.Duration { return r.signalToEnd })), "")
	return nil
}

// median is the middle value, or the mean of the two middle ones.
func median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func ratio(d, base time.Duration) string {
	if base <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f× baseline", float64(d)/float64(base))
}

func verdict(d, target time.Duration) string {
	if d < target {
		return fmt.Sprintf("  (target < %v: met)", target)
	}
	return fmt.Sprintf("  (target < %v: MISSED)", target)
}
