// Command hookinit is shim.Run with fake hooks, for the pid1 suite to test
// the stop budget and start-up without a mesh and without a test-only mode
// in the product binary.
//
//	hookinit [flags] -- COMMAND [ARGS...]
//
// BeforeExit appends one line per call to -hook-file:
//
//	beforeexit start=<unix ns> deadline=<unix ns or 0>
//
// and then takes -hook-sleep, returning early when its ctx ends unless
// -hook-ignore-ctx. Prepare writes "prepare start=<unix ns>" to
// -prepare-marker, waits until -prepare-release exists (if given), then fails
// if -prepare-fail, else returns -prepare-env.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/meshinit/meshinit/shim"
)

func main() {
	stopTimeout := flag.Duration("stop-timeout", 10*time.Second, "Config.StopTimeout")
	reserve := flag.Duration("logout-reserve", 3*time.Second, "Config.LogoutReserve")
	killGroup := flag.Bool("kill-group", false, "Config.KillGroup")
	stopKill := flag.Bool("stop-kill", false, "Config.StopKill")
	hookFile := flag.String("hook-file", "", "BeforeExit appends a line here")
	hookSleep := flag.Duration("hook-sleep", 0, "how long BeforeExit takes")
	hookIgnoreCtx := flag.Bool("hook-ignore-ctx", false, "BeforeExit ignores its deadline")
	prepMarker := flag.String("prepare-marker", "", "Prepare writes its start here")
	prepRelease := flag.String("prepare-release", "", "Prepare waits until this file exists")
	prepFail := flag.Bool("prepare-fail", false, "Prepare fails")
	prepEnv := flag.String("prepare-env", "", "K=V Prepare returns")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(shim.TerminalSafe(os.Stderr), &slog.HandlerOptions{Level: slog.LevelDebug}))
	hooks := shim.Hooks{
		BeforeExit: func(ctx context.Context) error {
			var dl int64
			if d, ok := ctx.Deadline(); ok {
				dl = d.UnixNano()
			}
			appendLine(*hookFile, fmt.Sprintf("beforeexit start=%d deadline=%d", time.Now().UnixNano(), dl))
			done := ctx.Done()
			if *hookIgnoreCtx {
				done = nil
			}
			select {
			case <-time.After(*hookSleep):
				return nil
			case <-done:
				return ctx.Err()
			}
		},
	}
	if *prepMarker != "" || *prepRelease != "" || *prepFail || *prepEnv != "" {
		hooks.Prepare = func(ctx context.Context) ([]string, error) {
			appendLine(*prepMarker, fmt.Sprintf("prepare start=%d", time.Now().UnixNano()))
			if err := waitForFile(ctx, *prepRelease); err != nil {
				return nil, err
			}
			if *prepFail {
				return nil, errors.New("fake prepare failure")
			}
			if *prepEnv == "" {
				return nil, nil
			}
			return []string{*prepEnv}, nil
		}
	}
	os.Exit(shim.Run(shim.Config{
		Args:          flag.Args(),
		Env:           os.Environ(),
		KillGroup:     *killGroup,
		Subreaper:     true,
		StopTimeout:   *stopTimeout,
		StopKill:      *stopKill,
		LogoutReserve: *reserve,
		Log:           log,
		Hooks:         hooks,
	}))
}

func appendLine(path, line string) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookinit:", err)
		return
	}
	defer f.Close()
	_, _ = f.WriteString(line + "\n")
}

// waitForFile stands in for a slow mesh join: it returns when path exists
// or ctx ends.
func waitForFile(ctx context.Context, path string) error {
	if path == "" {
		return nil
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", strings.TrimSpace(path), ctx.Err())
		case <-tick.C:
		}
	}
}
