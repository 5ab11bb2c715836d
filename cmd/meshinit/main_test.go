package main

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/shim"
)

func TestChildEnvStripsAuthKey(t *testing.T) {
	in := []string{"PATH=/bin", "MESH_AUTHKEY=tskey-secret", "MESH_AUTHKEY=", "MESH_AUTHKEY_FILE=/run/secrets/key", "MESH_AUTHKEYX=1", "HOME=/root"}
	got := childEnv(in)
	want := []string{"PATH=/bin", "MESH_AUTHKEY_FILE=/run/secrets/key", "MESH_AUTHKEYX=1", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Fatalf("childEnv = %q, want %q", got, want)
	}
}

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		argv, mesh, command []string
		found               bool
	}{
		{[]string{"meshinit", "--kill-group", "--", "app", "--", "x"}, []string{"meshinit", "--kill-group"}, []string{"app", "--", "x"}, true},
		{[]string{"meshinit", "--", "version"}, []string{"meshinit"}, []string{"version"}, true},
		{[]string{"meshinit", "version"}, []string{"meshinit", "version"}, nil, false},
		{[]string{"meshinit", "--"}, []string{"meshinit"}, []string{}, true},
	} {
		mesh, command, found := splitCommand(c.argv)
		if !slices.Equal(mesh, c.mesh) || !slices.Equal(command, c.command) || found != c.found {
			t.Errorf("splitCommand(%q) = %q, %q, %v", c.argv, mesh, command, found)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"10": 10 * time.Second, "0": 0, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond}
	for in, want := range good {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "10x", "99999999999999999999", "1e3", "-"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseDuration: MESH_*_TIMEOUT values come from the environment;
// nothing may panic, and bare numbers are whole seconds.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"10", "1m30s", "", "9223372036", "9223372037", "-1s", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && s != "" && strings.Trim(s, "0123456789") == "" && d%time.Second != 0 {
			t.Fatalf("%q seconds parsed as %v", s, d)
		}
	})
}

func TestBadSettingsExit125(t *testing.T) {
	for _, argv := range [][]string{
		{"meshinit"},
		{"meshinit", "--stop-timeout", "never", "--", "true"},
		{"meshinit", "--logout-timeout", "0", "--", "true"},
		{"meshinit", "--stop-signal", "SIGSTOP", "--", "true"},
		{"meshinit", "--net", "wifi", "--", "true"},
		{"meshinit", "--log-format", "xml", "--", "true"},
		{"meshinit", "--no-such-flag", "--", "true"},
		{"meshinit", "stray", "--", "true"},
	} {
		if got := run(argv); got != 125 {
			t.Errorf("run(%q) = %d, want 125", argv, got)
		}
	}
}

func TestLogLinesArePrefixed(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: &buf}, nil))
	log.Info("one")
	log.Warn("two", "k", "v")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, logPrefix) {
			t.Errorf("line without %q prefix: %q", logPrefix, l)
		}
	}
}

// TestBoundPrepareLimitsTheMeshJoin: MESH_WAIT_TIMEOUT becomes the deadline
// of the mesh join's ctx, and BeforeExit is passed on untouched.
func TestBoundPrepareLimitsTheMeshJoin(t *testing.T) {
	var deadline time.Time
	var hasDeadline bool
	exited := false
	h := boundPrepare(shim.Hooks{
		Prepare: func(ctx context.Context) ([]string, error) {
			deadline, hasDeadline = ctx.Deadline()
			return []string{"MESH_NAME=x"}, nil
		},
		BeforeExit: func(context.Context) error { exited = true; return nil },
	}, 250*time.Millisecond)
	before := time.Now()
	env, err := h.Prepare(context.Background())
	if err != nil || !slices.Equal(env, []string{"MESH_NAME=x"}) {
		t.Fatalf("Prepare = %q, %v", env, err)
	}
	if !hasDeadline || deadline.Before(before.Add(250*time.Millisecond)) || deadline.After(time.Now().Add(250*time.Millisecond)) {
		t.Fatalf("Prepare's ctx deadline %v (set=%v), want 250ms from the call", deadline.Sub(before), hasDeadline)
	}
	if err := h.BeforeExit(context.Background()); err != nil || !exited {
		t.Fatalf("BeforeExit not passed on: %v", err)
	}
	if got := boundPrepare(shim.Hooks{}, time.Second); got.Prepare != nil {
		t.Fatal("boundPrepare invented a Prepare hook")
	}
}
