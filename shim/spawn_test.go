package shim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exe := write("tool", 0o755)
	write("data", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/nonexistent", "PATH=" + dir} // the last PATH wins, as for getenv

	code := func(err error) int {
		var se *startError
		if errors.As(err, &se) {
			return se.code
		}
		if err != nil {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		return 0
	}
	if p, err := lookPath("tool", env); err != nil || p != exe {
		t.Fatalf("lookPath(tool) = %q, %v", p, err)
	}
	cases := map[string]int{
		"tool":                       0,
		"absent":                     ExitCommandMissing,
		filepath.Join(dir, "absent"): ExitCommandMissing,
		"data":                       ExitNotExecutable,
		filepath.Join(dir, "data"):   ExitNotExecutable,
		filepath.Join(dir, "subdir"): ExitNotExecutable,
		filepath.Join(dir, "tool/x"): ExitCommandMissing, // ENOTDIR
	}
	for name, want := range cases {
		_, err := lookPath(name, env)
		if got := code(err); got != want {
			t.Errorf("lookPath(%q): code %d (%v), want %d", name, got, err, want)
		}
	}
}

func TestLookPathDefaultPath(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	if _, err := lookPath("sh", nil); err != nil {
		t.Fatalf("without PATH the default path must be searched: %v", err)
	}
}
