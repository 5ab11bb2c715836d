package pid1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStdinStdoutStderrAndCwd: the command reads meshinit's stdin, writes
// to its stdout and stderr, and runs in the caller's working directory.
func TestStdinStdoutStderrAndCwd(t *testing.T) {
	bin, _ := setup(t)
	bothModes(t, func(t *testing.T, m mode) {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		script := `read line; echo "in=$line"; echo "cwd=$(pwd -P)"; echo "to-stderr" >&2`
		code, out, stderr := runQuick(t, m, bin, []string{"--", "/bin/sh", "-c", script},
			startOpts{dir: dir, stdin: strings.NewReader("hello from stdin\n")})
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		for _, want := range []string{"in=hello from stdin\n", "cwd=" + dir + "\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if stderr != "to-stderr\n" {
			t.Errorf("stderr = %q, want the command's line only", stderr)
		}
	})
}

// TestCommandNeverSeesAuthKey: MESH_AUTHKEY is removed from the command's
// environment even when it is empty (no mesh); everything else passes.
func TestCommandNeverSeesAuthKey(t *testing.T) {
	bin, _ := setup(t)
	code, out, stderr := runQuick(t, asChild, bin, []string{"--", "/usr/bin/env"},
		startOpts{env: []string{"MESH_AUTHKEY=", "APP_SETTING=kept"}})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(out, "MESH_AUTHKEY") {
		t.Fatalf("the command sees MESH_AUTHKEY:\n%s", out)
	}
	if !strings.Contains(out, "APP_SETTING=kept\n") {
		t.Fatalf("the command lost its environment:\n%s", out)
	}
}

// TestVersionAndHelp: `meshinit version` prints the version; --help names
// every MESH_* variable of the contract; "--" makes a verb's name an
// ordinary command.
func TestVersionAndHelp(t *testing.T) {
	bin, _ := setup(t)
	code, out, _ := runQuick(t, asChild, bin, []string{"version"}, startOpts{})
	if code != 0 || !strings.HasPrefix(out, "meshinit ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	code, out, _ = runQuick(t, asChild, bin, []string{"--help"}, startOpts{})
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, v := range []string{"MESH_AUTHKEY", "MESH_AUTHKEY_FILE", "MESH_COORDINATOR", "MESH_HOSTNAME", "MESH_NET",
		"MESH_PROXY", "MESH_FORWARD", "MESH_WAIT_TIMEOUT", "MESH_STOP_SIGNAL", "MESH_STOP_TIMEOUT",
		"MESH_LOGOUT_TIMEOUT", "MESH_STOP_KILL", "MESH_KILL_GROUP", "MESH_SUBREAPER", "MESH_CONTROL_SOCKET", "MESH_HEALTH_ADDR",
		"MESH_LOG_LEVEL", "MESH_LOG_FORMAT"} {
		if !strings.Contains(out, "$"+v+"]") {
			t.Errorf("--help does not document %s", v)
		}
	}
	// A program called "version" after "--" is run, not taken for the verb.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte("#!/bin/sh\necho i-am-the-program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runQuick(t, asChild, bin, []string{"--", "version"}, startOpts{env: []string{"PATH=" + dir + ":/usr/bin:/bin"}})
	if code != 0 || out != "i-am-the-program\n" {
		t.Fatalf("-- version: exit %d, out %q, err %q", code, out, stderr)
	}
}

// TestLogFormats: meshinit's own lines are recognisable beside the app's:
// prefixed in text, tagged in JSON (one object per line).
func TestLogFormats(t *testing.T) {
	bin, _ := setup(t)
	_, _, stderr := runQuick(t, asChild, bin, []string{"--", "no-such-command-meshinit-test"}, startOpts{env: []string{"MESH_LOG_FORMAT=json"}})
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stderr)), &line); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, stderr)
	}
	if line["src"] != "meshinit" || line["level"] != "ERROR" {
		t.Fatalf("JSON line lacks src=meshinit or level: %v", line)
	}
	_, _, stderr = runQuick(t, asChild, bin, []string{"--", "no-such-command-meshinit-test"}, startOpts{env: []string{"MESH_LOG_FORMAT=text"}})
	if !strings.HasPrefix(stderr, "meshinit: ") {
		t.Fatalf("text line without the meshinit: prefix: %q", stderr)
	}
}
