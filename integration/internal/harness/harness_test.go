package harness

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// outcome is how a gate ended a test it was given.
type outcome struct {
	testing.TB // nil: a gate that calls anything else panics
	skipped    bool
	failed     bool
	msg        string
}

func (o *outcome) Helper() {}

func (o *outcome) Skipf(format string, args ...any) {
	o.skipped, o.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (o *outcome) Fatalf(format string, args ...any) {
	o.failed, o.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// gate runs f on a fresh outcome in its own goroutine, as the testing
// package runs a test, so Skipf and Fatalf can end it.
func gate(f func(testing.TB)) *outcome {
	o := &outcome{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(o)
	}()
	<-done
	return o
}

func (o *outcome) String() string {
	switch {
	case o.failed:
		return "failed: " + o.msg
	case o.skipped:
		return "skipped: " + o.msg
	}
	return "ran"
}

// TestIntegrationGate pins the rule the CI run relies on: without
// MESHINIT_INTEGRATION=1 a suite skips locally but fails under CI=true, so a
// CI run can never pass with its integration suites silently skipped.
func TestIntegrationGate(t *testing.T) {
	for _, c := range []struct {
		integration, ci string
		want            string // "skipped", "failed" or "ran"
	}{
		{"", "", "skipped"},
		{"0", "", "skipped"},
		{"", "true", "failed"},
		{"0", "true", "failed"},
	} {
		t.Run(fmt.Sprintf("integration=%q,CI=%q", c.integration, c.ci), func(t *testing.T) {
			t.Setenv(EnvIntegration, c.integration)
			t.Setenv("CI", c.ci)
			o := gate(func(tb testing.TB) { Integration(tb) })
			if !strings.HasPrefix(o.String(), c.want) {
				t.Errorf("Integration: %v, want %s", o, c.want)
			}
			if !strings.Contains(o.msg, EnvIntegration) {
				t.Errorf("the message %q does not say how to turn the suites on (%s)", o.msg, EnvIntegration)
			}
		})
	}
}

// TestIntegrationGateNeedsRoot: switched on, the gate lets root through and
// treats a non-root user as a missing prerequisite.
func TestIntegrationGateNeedsRoot(t *testing.T) {
	t.Setenv(EnvIntegration, "1")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		o := gate(func(tb testing.TB) { Integration(tb) })
		want := "ran"
		if os.Geteuid() != 0 {
			want = map[string]string{"": "skipped", "true": "failed"}[ci]
		}
		if !strings.HasPrefix(o.String(), want) {
			t.Errorf("CI=%q, euid %d: Integration %v, want %s", ci, os.Geteuid(), o, want)
		}
	}
}

func TestMissingFailsOnlyInCI(t *testing.T) {
	for ci, want := range map[string]string{"": "skipped", "true": "failed"} {
		t.Setenv("CI", ci)
		o := gate(func(tb testing.TB) { Missing(tb, "a daemon") })
		if !strings.HasPrefix(o.String(), want) || !strings.Contains(o.msg, "a daemon") {
			t.Errorf("CI=%q: Missing %v, want %s naming what is missing", ci, o, want)
		}
		o = gate(func(tb testing.TB) { LookPath(tb, "meshinit-no-such-program") })
		if !strings.HasPrefix(o.String(), want) || !strings.Contains(o.msg, "meshinit-no-such-program") {
			t.Errorf("CI=%q: LookPath of a missing program %v, want %s naming it", ci, o, want)
		}
	}
}

func TestLookPathFindsAProgram(t *testing.T) {
	var got string
	o := gate(func(tb testing.TB) { got = LookPath(tb, "go") })
	if o.String() != "ran" || !strings.HasSuffix(got, "/go") {
		t.Errorf("LookPath(go) = %q, %v", got, o)
	}
}
